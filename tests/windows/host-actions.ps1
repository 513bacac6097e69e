# tests/windows helper: one action on this host's iSCSI initiator, target or policy, for the
# Python tests (tests/windows/hostactions.py). Test code, NOT the extension's script.
# In:  -Action <name>; the action's arguments as JSON in $env:ISCSI_TEST_ARGS. A CHAP secret
#      or a text to look for arrives hex-encoded and is decoded by .NET methods only, so
#      module logging (event 4103) records neither, except connect's -ChapSecret (a cmdlet
#      parameter: the CHAP test runs with module logging off).
# Out: one line, 'HOSTACTION ' + JSON {ok, result} or {ok: false, error, error_id}.
# Written without a Windows host to run it on: see tests/windows/README.md.
param(
    [Parameter(Mandatory = $true)]
    [ValidateSet('windows_info', 'connect', 'cleanup', 'login_options', 'target_chap',
        'service', 'service_status', 'module_logging', 'module_logging_restore',
        'events_4103', 'target_state', 'target_repair', 'portal_new', 'persistent_targets',
        'disk_associations', 'disk_state', 'bind_volumes', 'bound_list')]
    [string]$Action
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$ModuleLoggingKey = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\PowerShell\ModuleLogging'
$PersistentLoginClass = 'MSiSCSIInitiator_PersistentLoginClass'

function Get-Count($Value) {
    # @($null).Count is 1: a missing list counts 0 here.
    if ($null -eq $Value) {
        return 0
    }
    @($Value).Count
}

function ConvertFrom-Hex([string]$Hex) {
    $bytes = [byte[]]::new($Hex.Length / 2)
    for ($i = 0; $i -lt $bytes.Length; $i++) {
        $bytes[$i] = [Convert]::ToByte($Hex.Substring(2 * $i, 2), 16)
    }
    [Text.Encoding]::UTF8.GetString($bytes)
}

function Get-TargetSession([string]$Target) {
    @(Get-IscsiSession -ErrorAction SilentlyContinue | Where-Object { $_.TargetNodeAddress -eq $Target })
}

function Get-TargetLogin([string]$Target) {
    @(Get-CimInstance -Namespace 'root/wmi' -ClassName $PersistentLoginClass |
            Where-Object { $_.TargetName -eq $Target })
}

function Remove-TargetLogin($Login) {
    # iscsicli RemovePersistentTarget <initiator> <target> <port> <address> <socket>
    $address = '*'
    $socket = '*'
    if ($null -ne $Login.TargetPortal -and [string]$Login.TargetPortal.Address) {
        $address = [string]$Login.TargetPortal.Address
        $socket = [string]$Login.TargetPortal.Port
    }
    $port = '*'
    if ([uint32]$Login.InitiatorPortNumber -ne [uint32]::MaxValue) {
        $port = [string]$Login.InitiatorPortNumber
    }
    $iscsicli = Join-Path $env:SystemRoot 'System32\iscsicli.exe'
    $ErrorActionPreference = 'Continue'
    $output = @($null | & $iscsicli RemovePersistentTarget ([string]$Login.InitiatorInstance) `
            ([string]$Login.TargetName) $port $address $socket 2>&1)
    $code = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    [ordered]@{ exit_code = $code; last_line = [string]($output | Select-Object -Last 1) }
}

function Invoke-Cleanup([string]$Target) {
    # Leave no session and no persistent login of the test target behind.
    $unregistered = 0
    foreach ($session in Get-TargetSession $Target) {
        if ($session.IsPersistent) {
            try {
                Unregister-IscsiSession -SessionIdentifier $session.SessionIdentifier
                $unregistered++
            } catch {
                Write-Verbose "Unregister-IscsiSession: $($_.Exception.Message)"
            }
        }
    }
    $removals = @(foreach ($login in Get-TargetLogin $Target) { Remove-TargetLogin $login })
    $disconnected = 0
    foreach ($session in Get-TargetSession $Target) {
        Disconnect-IscsiTarget -NodeAddress $Target -SessionIdentifier $session.SessionIdentifier `
            -Confirm:$false
        $disconnected++
    }
    [ordered]@{
        unregistered  = $unregistered
        iscsicli      = $removals
        disconnected  = $disconnected
        left_sessions = Get-Count (Get-TargetSession $Target)
        left_logins   = Get-Count (Get-TargetLogin $Target)
    }
}

function Get-WindowsInfo {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    $current = Get-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
    $module = Get-Module -ListAvailable -Name iSCSI | Select-Object -First 1
    [ordered]@{
        Caption          = [string]$os.Caption
        Version          = [string]$os.Version
        BuildNumber      = [string]$os.BuildNumber
        UBR              = $current.UBR
        DisplayVersion   = $current.DisplayVersion
        EditionID        = $current.EditionID
        InstallationType = $current.InstallationType
        PSVersion        = $PSVersionTable.PSVersion.ToString()
        CLRVersion       = [string]$PSVersionTable.CLRVersion
        iSCSIModule      = [string]$module.Version
    }
}

function Connect-TestTarget($Arguments) {
    $parameters = @{ NodeAddress = [string]$Arguments.target; IsPersistent = [bool]$Arguments.persistent }
    if ($Arguments.multipath) {
        $parameters['IsMultipathEnabled'] = $true
    }
    if ($Arguments.portal) {
        $parameters['TargetPortalAddress'] = [string]$Arguments.portal
        $parameters['TargetPortalPortNumber'] = [uint16]$Arguments.port
    }
    if ($Arguments.chap_username) {
        # -ChapSecret is a cmdlet parameter: the CHAP test runs with module logging off.
        $parameters['AuthenticationType'] = 'ONEWAYCHAP'
        $parameters['ChapUsername'] = [string]$Arguments.chap_username
        $parameters['ChapSecret'] = ConvertFrom-Hex ([string]$Arguments.chap_secret_hex)
    }
    $session = Connect-IscsiTarget @parameters
    [ordered]@{
        SessionIdentifier  = [string]$session.SessionIdentifier
        AuthenticationType = [string]$session.AuthenticationType
        IsPersistent       = [bool]$session.IsPersistent
    }
}

function Get-LoginOption([string]$Target) {
    # What a persistent login will log in with at boot (the password is never read out).
    @(foreach ($login in Get-TargetLogin $Target) {
            $options = $login.LoginOptions
            $username = ''
            $usernameHex = ''
            if ($null -ne $options -and $null -ne $options.Username) {
                # Raw bytes as stored (ANSI? NUL-ended?), and read as the main script reads them.
                $raw = [byte[]]$options.Username
                $usernameHex = -join @(foreach ($byte in $raw) { $byte.ToString('x2') })
                $username = [Text.Encoding]::Default.GetString($raw).TrimEnd([char]0)
            }
            [ordered]@{
                TargetPortalAddress  = [string]$login.TargetPortal.Address
                TargetPortalPort     = $login.TargetPortal.Port
                InitiatorPortNumber  = $login.InitiatorPortNumber
                AuthType             = $options.AuthType
                LoginFlags           = $options.LoginFlags
                InformationSpecified = $options.InformationSpecified
                Username             = $username
                UsernameHex          = $usernameHex
                UsernameLength       = $options.UsernameLength
                AnsiCodePage         = [Text.Encoding]::Default.CodePage
                PasswordLength       = Get-Count $options.Password
            }
        })
}

function Set-TargetChap($Arguments) {
    $name = [string]$Arguments.target_name
    if (-not $Arguments.enable) {
        Set-IscsiServerTarget -TargetName $name -EnableChap $false
        return [ordered]@{ chap = $false }
    }
    $secure = [Security.SecureString]::new()
    foreach ($character in (ConvertFrom-Hex ([string]$Arguments.chap_secret_hex)).ToCharArray()) {
        $secure.AppendChar($character)
    }
    $credential = [Management.Automation.PSCredential]::new([string]$Arguments.chap_username, $secure)
    Set-IscsiServerTarget -TargetName $name -EnableChap $true -Chap $credential
    [ordered]@{ chap = $true }
}

function Set-ServiceState($Arguments) {
    $name = [string]$Arguments.name
    if ($Arguments.state -eq 'stop') {
        Stop-Service -Name $name -Force
        $wanted = [ServiceProcess.ServiceControllerStatus]::Stopped
    } else {
        Start-Service -Name $name
        $wanted = [ServiceProcess.ServiceControllerStatus]::Running
    }
    $service = Get-Service -Name $name
    $service.WaitForStatus($wanted, [TimeSpan]::FromSeconds(60))
    [ordered]@{ Status = (Get-Service -Name $name).Status.ToString() }
}

function Enable-ModuleLogging {
    # Returns what was there, for module_logging_restore.
    $saved = [ordered]@{ existed = (Test-Path $ModuleLoggingKey); enable = $null; names = @{} }
    if ($saved.existed) {
        $saved.enable = (Get-ItemProperty -Path $ModuleLoggingKey).EnableModuleLogging
        $namesKey = Join-Path $ModuleLoggingKey 'ModuleNames'
        if (Test-Path $namesKey) {
            $item = Get-Item -Path $namesKey
            foreach ($name in $item.GetValueNames()) {
                $saved.names[$name] = [string]$item.GetValue($name)
            }
        }
    }
    $null = New-Item -Path (Join-Path $ModuleLoggingKey 'ModuleNames') -Force
    $null = New-ItemProperty -Path $ModuleLoggingKey -Name EnableModuleLogging -PropertyType DWord `
        -Value 1 -Force
    $null = New-ItemProperty -Path (Join-Path $ModuleLoggingKey 'ModuleNames') -Name '*' `
        -PropertyType String -Value '*' -Force
    $saved
}

function Restore-ModuleLogging($Saved) {
    if (Test-Path $ModuleLoggingKey) {
        Remove-Item -Path $ModuleLoggingKey -Recurse -Force
    }
    if ($Saved.existed) {
        $null = New-Item -Path $ModuleLoggingKey -Force
        if ($null -ne $Saved.enable) {
            $null = New-ItemProperty -Path $ModuleLoggingKey -Name EnableModuleLogging `
                -PropertyType DWord -Value ([int]$Saved.enable) -Force
        }
        $namesKey = Join-Path $ModuleLoggingKey 'ModuleNames'
        foreach ($property in $Saved.names.PSObject.Properties) {
            $null = New-Item -Path $namesKey -Force
            $null = New-ItemProperty -Path $namesKey -Name $property.Name -PropertyType String `
                -Value ([string]$property.Value) -Force
        }
    }
    [ordered]@{ restored = $true; existed = [bool]$Saved.existed }
}

function Find-Event4103($Arguments) {
    # Event 4103 between two instants; whether any contains one of the texts looked for.
    $needles = @(foreach ($hex in @($Arguments.needles_hex)) { ConvertFrom-Hex ([string]$hex) })
    $filter = @{
        LogName   = 'Microsoft-Windows-PowerShell/Operational'
        Id        = 4103
        StartTime = [DateTimeOffset]::FromUnixTimeMilliseconds([long]$Arguments.start_ms).LocalDateTime
        EndTime   = [DateTimeOffset]::FromUnixTimeMilliseconds([long]$Arguments.end_ms).LocalDateTime
    }
    try {
        $events = @(Get-WinEvent -FilterHashtable $filter)
    } catch {
        if ([string]$_.FullyQualifiedErrorId -notlike 'NoMatchingEventsFound*') {
            throw
        }
        $events = @()
    }
    $found = @(foreach ($needle in $needles) { $false })
    $commands = @{}
    $samples = [Collections.Generic.List[string]]::new()
    foreach ($record in $events) {
        $message = [string]$record.Message
        for ($i = 0; $i -lt $needles.Count; $i++) {
            if ($message.IndexOf($needles[$i], [StringComparison]::OrdinalIgnoreCase) -ge 0) {
                $found[$i] = $true
                $message = $message -replace [regex]::Escape($needles[$i]), "<LOOKED-FOR-TEXT-$i>"
            }
        }
        $command = ''
        if ($message -match 'Command Name = (\S+)') {
            $command = $Matches[1]
        }
        $commands[$command] = 1 + [int]$commands[$command]
        if ($command -in @('Invoke-CimMethod', 'ConvertFrom-Json') -and $samples.Count -lt 6) {
            $samples.Add($message.Substring(0, [Math]::Min(3000, $message.Length)))
        }
    }
    [ordered]@{ count = $events.Count; found = $found; commands = $commands; samples = $samples.ToArray() }
}

function Get-TargetState([string]$Name) {
    $target = Get-IscsiServerTarget -TargetName $Name
    [ordered]@{
        Status       = [string]$target.Status
        LunMappings  = Get-Count $target.LunMappings
        VirtualDisks = @(foreach ($disk in Get-IscsiVirtualDisk -ErrorAction SilentlyContinue) {
                [ordered]@{ Path = [string]$disk.Path; Status = [string]$disk.Status }
            })
        WinTarget    = (Get-Service -Name WinTarget).Status.ToString()
    }
}

function Repair-TestTarget($Arguments) {
    # A RAM disk is not persisted: after a WinTarget restart, make and map it again if gone.
    $name = [string]$Arguments.target_name
    $disk = [string]$Arguments.virtual_disk
    $before = Get-TargetState $name
    $created = $false
    if (-not (Get-IscsiVirtualDisk -ErrorAction SilentlyContinue | Where-Object Path -EQ $disk)) {
        $null = New-IscsiVirtualDisk -Path $disk -SizeBytes 64MB
        $created = $true
    }
    $mapped = $false
    $mappings = @((Get-IscsiServerTarget -TargetName $name).LunMappings | Where-Object { $null -ne $_ })
    $values = @(foreach ($mapping in $mappings) {
            "$mapping"
            foreach ($property in $mapping.PSObject.Properties) { [string]$property.Value }
        })
    if (-not ($values -contains $disk -or ($values -join ' ').Contains($disk))) {
        Add-IscsiVirtualDiskTargetMapping -TargetName $name -Path $disk
        $mapped = $true
    }
    [ordered]@{ before = $before; created_disk = $created; mapped = $mapped; after = Get-TargetState $name }
}

function Invoke-PortalNew($Arguments) {
    # MSFT_iSCSITargetPortal.New called directly, as the extension's script calls it, for a
    # portal that may exist already: does it raise, return non-zero, or succeed?
    $call = @{
        Namespace  = 'root/Microsoft/Windows/Storage'
        ClassName  = 'MSFT_iSCSITargetPortal'
        MethodName = 'New'
        Arguments  = @{
            TargetPortalAddress    = [string]$Arguments.address
            TargetPortalPortNumber = [uint16]$Arguments.port
        }
    }
    try {
        $result = Invoke-CimMethod @call -ErrorAction Stop
        [ordered]@{ raised = $false; return_value = $result.ReturnValue }
    } catch {
        [ordered]@{
            raised       = $true
            return_value = $null
            message      = [string]$_.Exception.Message
            error_id     = [string]$_.FullyQualifiedErrorId
            category     = $_.CategoryInfo.Category.ToString()
        }
    }
}

function Get-IscsicliPersistentTarget([string]$Target) {
    # iscsicli's own list, which WMI (TargetName its class's only key) may collapse: how
    # many entries name the target, and the raw text for people.
    $iscsicli = Join-Path $env:SystemRoot 'System32\iscsicli.exe'
    $ErrorActionPreference = 'Continue'
    $output = @($null | & $iscsicli ListPersistentTargets 2>&1 | ForEach-Object { [string]$_ })
    $code = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    $mine = @($output | Where-Object { $_ -match '^\s*Target Name\s*:\s*(\S+)' -and $Matches[1] -eq $Target })
    [ordered]@{
        exit_code = $code
        count     = $mine.Count
        wmi_count = Get-Count (Get-TargetLogin $Target)
        lines     = @($output | Select-Object -First 200)
    }
}

function Get-DiskNumber([hashtable]$Association) {
    try {
        @(Get-Disk @Association | ForEach-Object { [int]$_.Number })
    } catch {
        [string]$_.FullyQualifiedErrorId
    }
}

function Get-DiskAssociation([string]$Target) {
    # Which disks Get-Disk finds through each session and each of its connections (MPIO and
    # clustered disks: does the session association exist?), and the cluster service.
    $cluster = @(Get-CimInstance -ClassName Win32_Service -Filter "Name='ClusSvc'")
    [ordered]@{
        cluster_service = if ($cluster.Count) { [string]$cluster[0].State } else { 'absent' }
        sessions        = @(foreach ($session in Get-TargetSession $Target) {
                [ordered]@{
                    SessionIdentifier = [string]$session.SessionIdentifier
                    by_session        = @(Get-DiskNumber @{ iSCSISession = $session })
                    by_connection     = @(foreach ($connection in @(Get-IscsiConnection -IscsiSession $session)) {
                            Get-DiskNumber @{ iSCSIConnection = $connection }
                        })
                    disks             = @(foreach ($disk in @(Get-Disk -iSCSISession $session -ErrorAction SilentlyContinue)) {
                            [ordered]@{
                                Number            = [int]$disk.Number
                                IsOffline         = [bool]$disk.IsOffline
                                IsClustered       = [bool]$disk.IsClustered
                                PartitionStyle    = [string]$disk.PartitionStyle
                                OperationalStatus = [string]$disk.OperationalStatus
                            }
                        })
                }
            })
    }
}

function Set-TestDiskState([string]$Target, [string]$State) {
    # The test target's disks: 'offline', 'online' (raw) or 'volume' (online, GPT, one NTFS
    # volume without a drive letter). Only the test target's RAM disk is touched.
    $numbers = @(foreach ($session in Get-TargetSession $Target) {
            foreach ($disk in @(Get-Disk -iSCSISession $session -ErrorAction SilentlyContinue)) { [int]$disk.Number }
        }) | Sort-Object -Unique
    foreach ($number in $numbers) {
        if ($State -eq 'offline') {
            Set-Disk -Number $number -IsOffline $true
            continue
        }
        Set-Disk -Number $number -IsOffline $false
        Set-Disk -Number $number -IsReadOnly $false
        if ($State -eq 'volume' -and [string](Get-Disk -Number $number).PartitionStyle -eq 'RAW') {
            Initialize-Disk -Number $number -PartitionStyle GPT
            $null = New-Partition -DiskNumber $number -UseMaximumSize |
                Format-Volume -FileSystem NTFS -Confirm:$false
        }
    }
    Get-DiskAssociation $Target
}

function Get-BoundList {
    @(foreach ($device in @(Get-CimInstance -Namespace 'root/wmi' -ClassName 'MSiSCSIInitiator_PersistentDevices')) {
            [string]$device.DevicePath
        })
}

function Invoke-BindVolume {
    # iscsicli BindPersistentVolumes: every volume of a persistent iSCSI login onto the
    # bound list (on the test host: the test target's). Its output and the list after.
    $iscsicli = Join-Path $env:SystemRoot 'System32\iscsicli.exe'
    $ErrorActionPreference = 'Continue'
    $output = @($null | & $iscsicli BindPersistentVolumes 2>&1 | ForEach-Object { [string]$_ })
    $code = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    [ordered]@{ exit_code = $code; lines = $output; bound = @(Get-BoundList) }
}

$answer = [ordered]@{ ok = $true; result = $null }
try {
    $arguments = [pscustomobject]@{}
    if ($env:ISCSI_TEST_ARGS) {
        $arguments = ConvertFrom-Json -InputObject $env:ISCSI_TEST_ARGS
    }
    switch ($Action) {
        'windows_info' { $answer.result = Get-WindowsInfo }
        'connect' { $answer.result = Connect-TestTarget $arguments }
        'cleanup' { $answer.result = Invoke-Cleanup ([string]$arguments.target) }
        'login_options' { $answer.result = @(Get-LoginOption ([string]$arguments.target)) }
        'target_chap' { $answer.result = Set-TargetChap $arguments }
        'service' { $answer.result = Set-ServiceState $arguments }
        'service_status' {
            $answer.result = [ordered]@{ Status = (Get-Service -Name ([string]$arguments.name)).Status.ToString() }
        }
        'module_logging' { $answer.result = Enable-ModuleLogging }
        'module_logging_restore' { $answer.result = Restore-ModuleLogging $arguments.saved }
        'events_4103' { $answer.result = Find-Event4103 $arguments }
        'target_state' { $answer.result = Get-TargetState ([string]$arguments.target_name) }
        'target_repair' { $answer.result = Repair-TestTarget $arguments }
        'portal_new' { $answer.result = Invoke-PortalNew $arguments }
        'persistent_targets' { $answer.result = Get-IscsicliPersistentTarget ([string]$arguments.target) }
        'disk_associations' { $answer.result = Get-DiskAssociation ([string]$arguments.target) }
        'disk_state' { $answer.result = Set-TestDiskState ([string]$arguments.target) ([string]$arguments.state) }
        'bind_volumes' { $answer.result = Invoke-BindVolume }
        'bound_list' { $answer.result = @(Get-BoundList) }
    }
} catch {
    $answer = [ordered]@{
        ok       = $false
        error    = [string]$_.Exception.Message
        error_id = [string]$_.FullyQualifiedErrorId
        category = $_.CategoryInfo.Category.ToString()
    }
}
# Straight to stdout, as the bootstrap does: no host formatting or line wrapping.
[Console]::Out.WriteLine('HOSTACTION ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
[Console]::Out.Flush()
