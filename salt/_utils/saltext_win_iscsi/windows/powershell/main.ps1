# salt iscsi extension: the main script, protocol 5. Windows PowerShell 5.1 only.
# In:  $Payload, one request line: base64 of a UTF-8 JSON request, then for each name in the
#      request's "secrets" list ' ' + base64 of that secret's UTF-8 text. Secrets are
#      decoded by .NET methods only and reach Windows inside a CIM method's argument
#      hashtable, so no cmdlet parameter shows them (module logging, event 4103).
# Out: base64 of a UTF-8 JSON response: v, ok, and the op's fields, or error.
# -Serve: run as an installed, signable file (iscsi.script_path): requests are read from
#      stdin, answers written as the bootstrap writes them (docs/security.md).
# Request values are only ever used as parameter values, never as script text.
param([string]$Payload, [switch]$Serve)

if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') {
    return 'ISCSI1-LANGUAGE ' + $ExecutionContext.SessionState.LanguageMode
}
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# IsMultipathEnabled is no property of MSFT_iSCSISession (only the docs' examples show
# it): it is always null, kept so that every answer has the same keys. A persistent login's
# IsMultipathEnabled (LoginFlags) says how it reconnects.
$SessionFields = @(
    'SessionIdentifier', 'InitiatorSideIdentifier', 'TargetSideIdentifier',
    'NumberOfConnections', 'TargetNodeAddress', 'InitiatorPortalAddress',
    'InitiatorNodeAddress', 'InitiatorInstanceName', 'AuthenticationType',
    'IsConnected', 'IsPersistent', 'IsDiscovered', 'IsDataDigest',
    'IsHeaderDigest', 'IsMultipathEnabled'
)
$ConnectionFields = @(
    'ConnectionIdentifier', 'InitiatorAddress', 'InitiatorPortNumber',
    'TargetAddress', 'TargetPortNumber'
)
$PortalFields = @(
    'TargetPortalAddress', 'TargetPortalPortNumber', 'InitiatorPortalAddress',
    'InitiatorInstanceName', 'IsDataDigest', 'IsHeaderDigest'
)
$TargetFields = @('NodeAddress', 'IsConnected')
$DiskFields = @(
    'Number', 'FriendlyName', 'SerialNumber', 'Size', 'IsBoot', 'IsSystem', 'IsClustered',
    'IsOffline'
)
$StorageNamespace = 'root/Microsoft/Windows/Storage'
# What iscsicli may receive: iSCSI names, instance names (hardware HBAs carry '&'),
# addresses (IPv6 with '%zone'). No quote, space or control character.
$PlainName = '^[A-Za-z0-9._:\\\[\]&%-]+\z'
# ...and of volume paths: drive letters, mount points, \\?\Volume{GUID}\ names.
$DevicePathName = '^[A-Za-z0-9._:\\?{}$-]+\z'

function New-ErrorRecord([string]$Message, [string]$ErrorId, [string]$Category) {
    [Management.Automation.ErrorRecord]::new(
        [Exception]::new($Message), $ErrorId, [Management.Automation.ErrorCategory]$Category, $null
    )
}

function ConvertTo-ErrorData($Record) {
    # CimException leaves Exception.HResult at 0x80131500: the status is in the error id,
    # e.g. 'HRESULT 0xefff0029,Connect-IscsiTarget', 'Windows System Error 5,...', a CIM
    # method's 'ReturnValue 0xEFFF003F,...' (Invoke-CheckedMethod), or the Storage
    # provider's 'StorageWMI 40001,Get-Disk' and the MI layer's 'MI RESULT 2,...', whose
    # numbers are no HRESULTs: status names them as Windows does, hresult stays null.
    $id = [string]$Record.FullyQualifiedErrorId
    $code = $null
    $status = $null
    if ($id -match '^(?:HRESULT|ReturnValue) 0x([0-9A-Fa-f]{1,8}),') {
        $code = '0x' + $Matches[1].ToUpperInvariant().PadLeft(8, '0')
    } elseif ($id -match '^Windows System Error (\d+),') {
        $code = '0x{0:X8}' -f (0x80070000 -bor [int]$Matches[1])
    } elseif ($id -match '^(StorageWMI|MI RESULT) (\d+),') {
        $status = $Matches[1] + ' ' + $Matches[2]
    }
    if ($null -ne $code) {
        $status = $code
    }
    [ordered]@{
        message  = [string]$Record.Exception.Message
        category = $Record.CategoryInfo.Category.ToString()
        error_id = $id
        hresult  = $code
        status   = $status
    }
}

function Invoke-CheckedMethod([hashtable]$Call, [string]$What) {
    # A provider may report failure in ReturnValue instead of raising (csi-proxy checks it
    # after every call; which one Windows does is recorded by tests/windows).
    $result = Invoke-CimMethod @Call -ErrorAction Stop
    $returned = [uint32]$result.ReturnValue
    if ($returned -ne 0) {
        $code = '0x{0:X8}' -f $returned
        throw (New-ErrorRecord "$What returned $code" "ReturnValue $code,$What" 'NotSpecified')
    }
}

function Import-Required([string[]]$Names) {
    # Explicit, never autoloaded: command discovery is slow where there is no
    # module-analysis cache. Storage (Get-Disk, Get-Partition) only for the ops needing it.
    foreach ($name in $Names) {
        try {
            Import-Module -Name $name -ErrorAction Stop
        } catch {
            $message = "the $name PowerShell module cannot be loaded (Server Core without it, " +
                'or a client edition?): ' + $_.Exception.Message
            throw (New-ErrorRecord $message 'IscsiModuleMissing' 'NotInstalled')
        }
    }
}

function Select-Fields($Object, [string[]]$Fields) {
    $data = [ordered]@{}
    foreach ($field in $Fields) {
        $data[$field] = $Object.$field
    }
    $data
}

function Get-SessionConnection($Session) {
    # Outputs the session's connection objects one by one; callers collect them with @().
    try {
        @(Get-IscsiConnection -IscsiSession $Session -ErrorAction Stop)
    } catch {
        # A session that is reconnecting may have no connection object yet.
        if ([string]$_.FullyQualifiedErrorId -like 'CmdletizationQuery_NotFound*') {
            return
        }
        throw
    }
}

function Get-ConnectionData($Session) {
    foreach ($connection in @(Get-SessionConnection $Session)) {
        Select-Fields $connection $ConnectionFields
    }
}

function ConvertTo-VolumeKey([string]$Path) {
    # How a volume path compares: case-insensitive, without a trailing backslash.
    $Path.TrimEnd('\').ToLowerInvariant()
}

function Get-BoundPath {
    # The initiator's persistently bound volumes and devices: its service does not finish
    # starting until each of them is there (SetupPersistentIScsiDevices).
    $class = 'MSiSCSIInitiator_PersistentDevices'
    @(foreach ($device in @(Get-CimInstance -Namespace 'root/wmi' -ClassName $class -ErrorAction Stop)) {
            [string]$device.DevicePath
        })
}

function Get-VolumeData($Disk, [string[]]$Bound) {
    # Outputs the disk's volumes (drive letter, access paths, the bound-list entries that
    # name them) one by one.
    try {
        $partitions = @(Get-Partition -DiskNumber $Disk.Number -ErrorAction Stop)
    } catch {
        if ([string]$_.FullyQualifiedErrorId -like 'CmdletizationQuery_NotFound*') {
            return
        }
        throw
    }
    foreach ($partition in $partitions) {
        $letter = ''
        if ([int][char]$partition.DriveLetter -ne 0) {
            $letter = [string]$partition.DriveLetter
        }
        $paths = @(foreach ($path in @($partition.AccessPaths)) { [string]$path })
        if ($letter -or $paths.Count -gt 0) {
            $names = @(foreach ($path in @($paths) + @("${letter}:")) { ConvertTo-VolumeKey $path })
            $boundAs = @(foreach ($entry in $Bound) {
                    if ($names -contains (ConvertTo-VolumeKey $entry)) { $entry }
                })
            [ordered]@{
                DriveLetter = $letter
                AccessPaths = $paths
                IsBound     = $boundAs.Count -gt 0
                BoundPaths  = $boundAs
            }
        }
    }
}

function Find-Disk([hashtable]$Association) {
    # Outputs the disks Get-Disk finds through one association; none is no error.
    try {
        @(Get-Disk @Association -ErrorAction Stop)
    } catch {
        if ([string]$_.FullyQualifiedErrorId -like 'CmdletizationQuery_NotFound*') {
            return
        }
        throw
    }
}

function Get-DiskData($Session, [string[]]$Bound) {
    # Outputs the disks behind a session, each with its volumes, one by one. On Server
    # 2016+ the session-to-disk association "may not be created when the clustered storage
    # subsystem claims the disks": the connections' disks are asked too.
    $disks = [ordered]@{}
    $found = @(Find-Disk @{ IscsiSession = $Session })
    foreach ($connection in @(Get-SessionConnection $Session)) {
        $found += @(Find-Disk @{ IscsiConnection = $connection })
    }
    foreach ($disk in $found) {
        if (-not $disks.Contains([string]$disk.Number)) {
            $disks[[string]$disk.Number] = $disk
        }
    }
    foreach ($disk in $disks.Values) {
        $data = Select-Fields $disk $DiskFields
        $data['Volumes'] = @(Get-VolumeData $disk $Bound)
        $data
    }
}

function Test-ClusterService {
    # Whether the failover cluster service runs (its storage may hide a session's disks).
    $filter = "Name='ClusSvc'"
    $service = @(Get-CimInstance -ClassName 'Win32_Service' -Filter $filter -ErrorAction Stop)
    $service.Count -gt 0 -and [string]$service[0].State -eq 'Running'
}

function Get-SessionData([bool]$WithConnections, [bool]$WithDisks) {
    $cluster = $WithDisks -and (Test-ClusterService)
    $bound = @()
    if ($WithDisks) {
        $bound = @(Get-BoundPath)
    }
    foreach ($session in @(Get-IscsiSession -ErrorAction Stop)) {
        $data = Select-Fields $session $SessionFields
        if ($WithConnections) {
            $data['Connections'] = @(Get-ConnectionData $session)
        }
        if ($WithDisks) {
            $data['Disks'] = @(Get-DiskData $session $bound)
            # No disk found either way on a cluster node: they may exist, unseen.
            $data['DisksUnknown'] = $cluster -and $data['Disks'].Count -eq 0
        }
        $data
    }
}

function Add-Optional([hashtable]$Arguments, [string]$Name, $Value) {
    # Only what the request gives: an empty string is not "any" for CIM methods.
    if ($null -ne $Value -and [string]$Value -ne '') {
        $Arguments[$Name] = $Value
    }
}

function Add-TargetPortal($Request, [hashtable]$Secret) {
    # The CIM method New, not New-IscsiTargetPortal: the CHAP secret stays out of logged
    # cmdlet parameters (GUESS: the method takes ChapUsername and ChapSecret as the cmdlet
    # does; tests/windows checks it).
    $arguments = @{
        TargetPortalAddress    = [string]$Request.address
        TargetPortalPortNumber = [uint16]$Request.port
    }
    Add-Optional $arguments 'InitiatorPortalAddress' $Request.initiator_portal_address
    Add-Optional $arguments 'InitiatorInstanceName' $Request.initiator_instance_name
    Add-Optional $arguments 'AuthenticationType' $Request.authentication_type
    Add-Optional $arguments 'ChapUsername' $Request.chap_username
    Add-Optional $arguments 'ChapSecret' $Secret['chap_secret']
    $call = @{
        Namespace = $StorageNamespace; ClassName = 'MSFT_iSCSITargetPortal'
        MethodName = 'New'; Arguments = $arguments
    }
    try {
        Invoke-CheckedMethod $call 'MSFT_iSCSITargetPortal.New'
    } catch {
        # A portal already there may fail with ISDSC_TARGET_PORTAL_ALREADY_EXISTS (what New
        # does is recorded by tests/windows): discover through it again, as New would.
        if ((ConvertTo-ErrorData $_).hresult -ne '0xEFFF0032') {
            throw
        }
        $portal = @{
            TargetPortalAddress    = [string]$Request.address
            TargetPortalPortNumber = [uint16]$Request.port
        }
        $null = Update-IscsiTargetPortal @portal -ErrorAction Stop
    }
}

function Connect-Target($Request, [hashtable]$Secret) {
    # MSFT_iSCSITarget.Connect, the method behind Connect-IscsiTarget (GUESS as above for
    # ChapUsername and ChapSecret).
    $arguments = @{
        NodeAddress        = [string]$Request.node_address
        IsPersistent       = [bool]$Request.is_persistent
        IsMultipathEnabled = [bool]$Request.is_multipath_enabled
    }
    Add-Optional $arguments 'TargetPortalAddress' $Request.address
    if ($Request.address) {
        $arguments['TargetPortalPortNumber'] = [uint16]$Request.port
    }
    Add-Optional $arguments 'InitiatorPortalAddress' $Request.initiator_portal_address
    Add-Optional $arguments 'AuthenticationType' $Request.authentication_type
    Add-Optional $arguments 'ChapUsername' $Request.chap_username
    Add-Optional $arguments 'ChapSecret' $Secret['chap_secret']
    $call = @{
        Namespace = $StorageNamespace; ClassName = 'MSFT_iSCSITarget'
        MethodName = 'Connect'; Arguments = $arguments
    }
    Invoke-CheckedMethod $call 'MSFT_iSCSITarget.Connect'
}

function Invoke-PerItem([object[]]$Items, [scriptblock]$Action) {
    foreach ($item in $Items) {
        $result = [ordered]@{ id = [string]$item; ok = $true }
        try {
            $null = & $Action $item
        } catch {
            $result['ok'] = $false
            $result['error'] = ConvertTo-ErrorData $_
        }
        $result
    }
}

function Register-Session([string]$Id, $Request, [hashtable]$Secret) {
    # The CIM method, not Register-IscsiSession: its argument hashtable keeps the CHAP
    # secret out of the logged cmdlet parameters.
    $session = Get-IscsiSession -SessionIdentifier $Id -ErrorAction Stop
    $arguments = @{ IsMultipathEnabled = [bool]$Request.is_multipath_enabled }
    if ($Request.chap_username) {
        $arguments['ChapUsername'] = [string]$Request.chap_username
    }
    if ($Secret.ContainsKey('chap_secret')) {
        $arguments['ChapSecret'] = $Secret['chap_secret']
    }
    $call = @{ InputObject = $session; MethodName = 'Register'; Arguments = $arguments }
    Invoke-CheckedMethod $call 'MSFT_iSCSISession.Register'
}

function Get-PersistentLoginData {
    $class = 'MSiSCSIInitiator_PersistentLoginClass'
    foreach ($login in @(Get-CimInstance -Namespace 'root/wmi' -ClassName $class -ErrorAction Stop)) {
        # A login made without a portal may carry no TargetPortal (unobserved: see tests/windows).
        $address = ''
        $port = [uint16]0
        if ($null -ne $login.TargetPortal) {
            $address = [string]$login.TargetPortal.Address
            $port = [uint16]$login.TargetPortal.Port
        }
        # How it reconnects (MSiSCSIInitiator_TargetLoginOptions): LoginFlags bit 0x2 is
        # ISCSI_LOGIN_FLAG_MULTIPATH_ENABLED; AuthType 1 is CHAP, 2 mutual CHAP.
        $multipath = $false
        $authentication = 'NONE'
        $user = ''
        $options = $login.LoginOptions
        if ($null -ne $options) {
            $multipath = (([uint32]$options.LoginFlags) -band 2) -ne 0
            if ([uint32]$options.AuthType -eq 1) {
                $authentication = 'ONEWAYCHAP'
            } elseif ([uint32]$options.AuthType -eq 2) {
                $authentication = 'MUTUALCHAP'
            }
            if ($null -ne $options.Username) {
                # ANSI bytes (the system code page: Encoding.Default in .NET Framework),
                # maybe NUL-ended: read otherwise, a name never equals the one asked for.
                $raw = [byte[]]@($options.Username)
                $user = [Text.Encoding]::Default.GetString($raw).TrimEnd([char]0)
            }
        }
        [ordered]@{
            TargetName          = [string]$login.TargetName
            InitiatorInstance   = [string]$login.InitiatorInstance
            InitiatorPortNumber = [uint32]$login.InitiatorPortNumber
            TargetPortalAddress = $address
            TargetPortalPort    = $port
            IsMultipathEnabled  = $multipath
            AuthenticationType  = $authentication
            ChapUsername        = $user
        }
    }
}

function Get-IscsicliArgument([string]$Value, [bool]$AnyWhenEmpty) {
    # Windows PowerShell 5.1 drops empty arguments to native programs: iscsicli writes
    # "any" as '*', so an empty value becomes '*' where "any" is meant.
    if ($Value.Length -eq 0 -and $AnyWhenEmpty) {
        return '*'
    }
    if ($Value -notmatch $PlainName) {
        $message = "not a plain iSCSI name or address, iscsicli cannot take it: '$Value'"
        throw (New-ErrorRecord $message 'IscsiNotPlainName' 'InvalidArgument')
    }
    $Value
}

function Invoke-Iscsicli([string[]]$Arguments) {
    # Outputs iscsicli's output lines (callers that do not need them discard them).
    $iscsicli = $env:SystemRoot + '\System32\iscsicli.exe'
    # Nothing on stdin: iscsicli would otherwise read commands from the protocol's stdin.
    # 'Continue' here: in 5.1 a native stderr line under 'Stop' ends the script.
    $ErrorActionPreference = 'Continue'
    $output = @($null | & $iscsicli @Arguments 2>&1)
    $exitCode = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    if ($exitCode -ne 0) {
        $lines = @(foreach ($line in $output) { if ("$line".Trim()) { "$line".Trim() } })
        $text = 'iscsicli ' + $Arguments[0] + ' failed'
        if ($lines.Count -gt 0) {
            $text = $lines[$lines.Count - 1]
        }
        $status = '0x{0:X8}' -f [int]$exitCode
        throw (New-ErrorRecord "$text (iscsicli status $status)" 'IscsicliFailed' 'InvalidOperation')
    }
    $output
}

function Remove-BoundPath([string]$Path) {
    # iscsicli RemovePersistentDevices <volume or device path> (RemovePersistentIScsiDevice).
    # The path as the bound list names it; never one with a space or a quote (5.1 quotes
    # native arguments without escaping, and a trailing backslash would eat the quote).
    if ($Path -notmatch $DevicePathName) {
        $message = "not a plain volume path, iscsicli cannot take it: '$Path'"
        throw (New-ErrorRecord $message 'IscsiNotPlainName' 'InvalidArgument')
    }
    $null = Invoke-Iscsicli @('RemovePersistentDevices', $Path)
}

function Get-SessionBoundPath($Session, [string[]]$Bound) {
    # Outputs the bound-list entries that name a volume of the session's disks.
    foreach ($disk in @(Get-DiskData $Session $Bound)) {
        foreach ($volume in @($disk['Volumes'])) {
            foreach ($path in @($volume['BoundPaths'])) { $path }
        }
    }
}

function Remove-PersistentLogin($Login) {
    # iscsicli RemovePersistentTarget <initiator> <target> <port> <address> <socket> is the
    # initiator's documented interface for this; '*' means any.
    $address = [string]$Login.TargetPortalAddress
    $port = '*'
    if ([uint32]$Login.InitiatorPortNumber -ne [uint32]::MaxValue) {
        $port = [string][uint32]$Login.InitiatorPortNumber
    }
    $socket = '*'
    if ($address.Length -gt 0) {
        $socket = [string][uint16]$Login.TargetPortalPort
    }
    $arguments = @(
        'RemovePersistentTarget',
        (Get-IscsicliArgument ([string]$Login.InitiatorInstance) $true),
        (Get-IscsicliArgument ([string]$Login.TargetName) $false),
        $port,
        (Get-IscsicliArgument $address $true),
        $socket
    )
    $null = Invoke-Iscsicli $arguments
}

function Get-MsdsmClaim {
    # Whether MPIO's Microsoft DSM claims iSCSI disks: iSCSI among its automatic-claim bus
    # types (Get-MSDSMAutomaticClaimSettings; Enable-MSDSMAutomaticClaim -BusType iSCSI) or
    # the iSCSI bus's hardware id MSFT2005iSCSIBusType_0x9 in its supported hardware
    # (Get-MSDSMSupportedHW: VendorId MSFT2005, ProductId iSCSIBusType_0x9; what
    # mpclaim -i -d MSFT2005iSCSIBusType_0x9 adds). Without the Multipath-IO feature the
    # MPIO module is not there: nothing claims anything.
    $claim = [ordered]@{ mpio = $false; automatic = $false; hardware = $false }
    if (@(Get-Module -ListAvailable -Name 'MPIO' -ErrorAction Stop).Count -eq 0) {
        return $claim
    }
    Import-Required @('MPIO')
    $claim['mpio'] = $true
    $settings = Get-MSDSMAutomaticClaimSettings -ErrorAction Stop
    $claim['automatic'] = ($null -ne $settings) -and ($settings.iSCSI -eq $true)
    foreach ($item in @(Get-MSDSMSupportedHW -ErrorAction Stop)) {
        if (([string]$item.VendorId + [string]$item.ProductId) -eq 'MSFT2005iSCSIBusType_0x9') {
            $claim['hardware'] = $true
        }
    }
    $claim
}

function Get-Digest([bool]$WithSessions) {
    # What the beacon compares between ticks: the persistent-login list and, when the policy
    # has rules on sessions as such, every session's persistence and connection state (a
    # policy of not_persistent rules alone is decided by the logins: the sessions are not
    # enumerated). Ordinal sort: the same text for the same state.
    $lines = [Collections.Generic.List[string]]::new()
    $persistent = $null
    if ($WithSessions) {
        $persistent = 0
        foreach ($session in @(Get-IscsiSession -ErrorAction Stop)) {
            $state = [string]$session.IsPersistent + '|' + [string]$session.IsConnected
            $lines.Add('s|' + [string]$session.SessionIdentifier + '|' + $state)
            if ($session.IsPersistent) {
                $persistent++
            }
        }
    }
    $logins = 0
    foreach ($login in @(Get-PersistentLoginData)) {
        $lines.Add('l|' + (@($login.Values) -join '|'))
        $logins++
    }
    $sorted = $lines.ToArray()
    [Array]::Sort($sorted, [StringComparer]::Ordinal)
    $sha = [Security.Cryptography.SHA256]::Create()
    $hash = $sha.ComputeHash([Text.Encoding]::UTF8.GetBytes(($sorted -join "`n")))
    [ordered]@{
        count  = $persistent
        logins = $logins
        digest = -join @(foreach ($byte in $hash) { $byte.ToString('x2') })
    }
}

# Host readiness (op diagnose, op ready). Registry keys: the SCSI adapter device class, in
# which the iSCSI initiator driver's instance keeps its timers under Parameters (Microsoft's
# "iSCSI Software Initiator and iSNS Server timers quick reference"); the disk class
# driver's TimeOutValue; MPIO's PDORemovePeriod.
$AdapterClassKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Class\{4D36E97B-E325-11CE-BFC1-08002BE10318}'
$DiskKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\Disk'
$MpioKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\mpio\Parameters'
# The timers read and written (diagnosis.py has their defaults); nothing else is written.
$TimerNames = @(
    'LinkDownTime', 'MaxRequestHoldTime', 'SrbTimeoutDelta', 'TCPConnectTime',
    'TCPDisconnectTime', 'WMIRequestTimeout', 'DelayBetweenReconnect', 'EnableNOPOut'
)

function Read-Fact([Collections.Specialized.OrderedDictionary]$Facts, [string]$FactName, [scriptblock]$Read) {
    # One fact in its own try: an unreadable one carries its error, the others go on.
    try {
        $Facts[$FactName] = [ordered]@{ value = (& $Read) }
    } catch {
        $Facts[$FactName] = [ordered]@{ error = (ConvertTo-ErrorData $_) }
    }
}

function Get-InitiatorParametersPath {
    # The initiator driver's instance of the adapter class (GUESS: its DriverDesc reads
    # 'Microsoft iSCSI Initiator' whatever the display language). Only the numbered
    # instance keys are opened: the class's Properties key is closed even to administrators.
    Import-Required @('Microsoft.PowerShell.Management')
    $class = Get-Item -Path $AdapterClassKey -ErrorAction Stop
    foreach ($name in $class.GetSubKeyNames()) {
        if ($name -notmatch '^\d{4}\z') {
            continue
        }
        $key = $class.OpenSubKey($name)
        if ($null -ne $key -and [string]$key.GetValue('DriverDesc') -eq 'Microsoft iSCSI Initiator') {
            return $AdapterClassKey + '\' + $name + '\Parameters'
        }
    }
    $message = 'no Microsoft iSCSI Initiator instance under ' + $AdapterClassKey
    throw (New-ErrorRecord $message 'IscsiAdapterKeyMissing' 'ObjectNotFound')
}

function Get-IscsiService {
    # The MSiSCSI service as Win32_Service shows it (State, StartMode: Auto, Manual, Disabled).
    $service = @(Get-CimInstance -ClassName 'Win32_Service' -Filter "Name='MSiSCSI'" -ErrorAction Stop)
    if ($service.Count -eq 0) {
        throw (New-ErrorRecord 'no MSiSCSI service on this host' 'IscsiServiceMissing' 'ObjectNotFound')
    }
    $service[0]
}

function Read-RegistryValue([string]$Path, [string]$ValueName) {
    # The value, or null when it is not set (the driver's default applies).
    Import-Required @('Microsoft.PowerShell.Management')
    (Get-Item -Path $Path -ErrorAction Stop).GetValue($ValueName)
}

function Set-RegistryDword([string]$Path, [string]$ValueName, $Value) {
    Import-Required @('Microsoft.PowerShell.Management')
    $null = New-ItemProperty -Path $Path -Name $ValueName -Value ([uint32]$Value) -PropertyType DWord -Force -ErrorAction Stop
}

function Get-Diagnosis {
    # Raw facts by diagnosis.py's item names; verdicts are decided in Python.
    $facts = [ordered]@{}
    Read-Fact $facts 'powershell.edition' { [string]$PSVersionTable.PSEdition }
    Read-Fact $facts 'powershell.version' { $PSVersionTable.PSVersion.ToString() }
    Read-Fact $facts 'powershell.language_mode' { [string]$ExecutionContext.SessionState.LanguageMode }
    Read-Fact $facts 'iscsi.module' {
        Import-Required @('iSCSI')
        [string](Get-Module -Name 'iSCSI' -ErrorAction Stop).Version
    }
    Read-Fact $facts 'service.state' {
        Import-Required @('CimCmdlets')
        [string](Get-IscsiService).State
    }
    Read-Fact $facts 'service.start_type' {
        Import-Required @('CimCmdlets')
        [string](Get-IscsiService).StartMode
    }
    Read-Fact $facts 'firewall.iscsi_service' {
        Import-Required @('NetSecurity')
        # GUESS: the group's display name is English ('iSCSI Service') on other locales too.
        $rules = @()
        try {
            $rules = @(Get-NetFirewallRule -DisplayGroup 'iSCSI Service' -ErrorAction Stop)
        } catch {
            if ([string]$_.CategoryInfo.Category -ne 'ObjectNotFound') { throw }
        }
        , @(foreach ($rule in $rules) {
                [ordered]@{
                    Name      = [string]$rule.Name
                    Enabled   = [string]$rule.Enabled -eq 'True'
                    Direction = [string]$rule.Direction
                }
            })
    }
    Read-Fact $facts 'mpio.feature' {
        Import-Required @('ServerManager')
        [string](Get-WindowsFeature -Name 'Multipath-IO' -ErrorAction Stop).InstallState
    }
    Read-Fact $facts 'mpio.msdsm_claim' {
        Import-Required @('MPIO')
        # A hashtable of bus type to claimed (GUESS: as its documentation's output shows).
        $claims = Get-MSDSMAutomaticClaimSettings -ErrorAction Stop
        $claimed = [ordered]@{}
        foreach ($bus in @($claims.Keys)) {
            $claimed[[string]$bus] = [bool]$claims[$bus]
        }
        $claimed
    }
    Read-Fact $facts 'mpio.load_balance_policy' {
        Import-Required @('MPIO')
        [string](Get-MSDSMGlobalDefaultLoadBalancePolicy -ErrorAction Stop)
    }
    Read-Fact $facts 'initiator.names' {
        Import-Required @('Storage')
        , @(foreach ($port in @(Get-InitiatorPort -ErrorAction Stop)) {
                if ([string]$port.ConnectionType -eq 'iSCSI') { [string]$port.NodeAddress }
            })
    }
    foreach ($timer in $TimerNames) {
        Read-Fact $facts ('timer.' + $timer) { Read-RegistryValue (Get-InitiatorParametersPath) $timer }
    }
    Read-Fact $facts 'disk.timeout' { Read-RegistryValue $DiskKey 'TimeOutValue' }
    Read-Fact $facts 'mpio.pdo_remove_period' { Read-RegistryValue $MpioKey 'PDORemovePeriod' }
    $facts
}

function Get-Distinct([string[]]$Values) {
    # The values once each, in ordinal order.
    $set = [Collections.Generic.SortedSet[string]]::new([StringComparer]::Ordinal)
    foreach ($value in $Values) {
        $null = $set.Add($value)
    }
    , @($set)
}

function Get-Observation {
    # Read-only facts that settle the simulator's guesses (ISCSI_SIM_OBSERVATIONS): which
    # session fields are null, the addresses sessions and connections show, WMI's
    # persistent logins against iscsicli's list, the shape of a harmless not-found error.
    $facts = [ordered]@{}
    Read-Fact $facts 'windows' {
        $os = Get-CimInstance -ClassName 'Win32_OperatingSystem' -ErrorAction Stop
        $ubr = Read-RegistryValue 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' 'UBR'
        [ordered]@{ Caption = [string]$os.Caption; Version = [string]$os.Version; UBR = $ubr }
    }
    Read-Fact $facts 'sessions' {
        $nulls = [ordered]@{}
        $portals = @()
        $connections = @()
        $count = 0
        foreach ($session in @(Get-IscsiSession -ErrorAction Stop)) {
            $count++
            foreach ($field in $SessionFields) {
                if ($null -eq $session.$field) {
                    $nulls[$field] = 1 + [int]$nulls[$field]
                }
            }
            $portals += [string]$session.InitiatorPortalAddress
            foreach ($connection in @(Get-SessionConnection $session)) {
                $connections += ([string]$connection.InitiatorAddress + ' -> ' + [string]$connection.TargetAddress)
            }
        }
        [ordered]@{
            count                    = $count
            null_fields              = $nulls
            initiator_portal_address = Get-Distinct $portals
            connection_addresses     = Get-Distinct $connections
        }
    }
    Read-Fact $facts 'persistent_logins' {
        $targets = @(foreach ($login in @(Get-PersistentLoginData)) { [string]$login.TargetName })
        $listed = @(Invoke-Iscsicli @('ListPersistentTargets'))
        # GUESS: iscsicli prints one 'Target Name' line per persistent login.
        $entries = 0
        foreach ($line in $listed) {
            if ("$line" -match '^\s*Target Name\s*:') {
                $entries++
            }
        }
        [ordered]@{
            wmi_instances        = $targets.Count
            wmi_distinct_targets = (Get-Distinct $targets).Count
            iscsicli_entries     = $entries
        }
    }
    Read-Fact $facts 'not_found_error' {
        try {
            $null = Get-IscsiSession -SessionIdentifier 'saltext-iscsi-probe' -ErrorAction Stop
            $null
        } catch {
            ConvertTo-ErrorData $_
        }
    }
    $facts
}

function Invoke-Fix([string]$ItemName, [scriptblock]$Fix) {
    $result = [ordered]@{ item = $ItemName; ok = $true }
    try {
        $null = & $Fix
    } catch {
        $result['ok'] = $false
        $result['error'] = ConvertTo-ErrorData $_
    }
    $result
}

function Set-Readiness($Request) {
    # What op ready was asked to fix, each in its own try; only known timers are written.
    Import-Required @('Microsoft.PowerShell.Management')
    if ($Request.start_type) {
        Invoke-Fix 'service.start_type' { Set-Service -Name 'MSiSCSI' -StartupType Automatic -ErrorAction Stop }
    }
    if ($Request.start_service) {
        Invoke-Fix 'service.state' { Start-Service -Name 'MSiSCSI' -ErrorAction Stop }
    }
    if ($Request.msdsm_claim) {
        Invoke-Fix 'mpio.msdsm_claim' {
            Import-Required @('MPIO')
            Enable-MSDSMAutomaticClaim -BusType iSCSI -Confirm:$false -ErrorAction Stop
        }
    }
    if ($null -ne $Request.timers) {
        foreach ($property in @($Request.timers.PSObject.Properties)) {
            $timer = [string]$property.Name
            $seconds = $property.Value
            Invoke-Fix ('timer.' + $timer) {
                if ($TimerNames -notcontains $timer) {
                    throw (New-ErrorRecord "not an iSCSI timer: '$timer'" 'IscsiUnknownTimer' 'InvalidArgument')
                }
                Set-RegistryDword (Get-InitiatorParametersPath) $timer $seconds
            }
        }
    }
    if ($null -ne $Request.disk_timeout) {
        Invoke-Fix 'disk.timeout' { Set-RegistryDword $DiskKey 'TimeOutValue' $Request.disk_timeout }
    }
    if ($null -ne $Request.pdo_remove_period) {
        Invoke-Fix 'mpio.pdo_remove_period' { Set-RegistryDword $MpioKey 'PDORemovePeriod' $Request.pdo_remove_period }
    }
}

function Invoke-Request([string]$Payload) {
    # One request line in, base64 of the JSON answer out.
    $response = [ordered]@{ v = 5; ok = $true }
    $secret = @{}
    try {
        $parts = $Payload.Split(' ')
        $requestJson = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($parts[0]))
        $request = ConvertFrom-Json -InputObject $requestJson -ErrorAction Stop
        $names = @()
        if ($null -ne $request.secrets) {
            $names = @($request.secrets)
        }
        for ($i = 0; $i -lt $names.Count; $i++) {
            $bytes = [Convert]::FromBase64String($parts[$i + 1])
            $secret[[string]$names[$i]] = [Text.Encoding]::UTF8.GetString($bytes)
        }
        # diagnose reports the edition and the modules among its facts: it needs neither.
        if ([string]$request.op -ne 'diagnose') {
            if ($PSVersionTable.PSEdition -eq 'Core') {
                # pwsh loads the iSCSI module through implicit remoting: objects come back
                # deserialized and -IscsiSession cannot bind. Windows PowerShell 5.1 only.
                $message = 'PowerShell 7 (pwsh) is not supported; use Windows PowerShell 5.1'
                throw (New-ErrorRecord $message 'IscsiUnsupportedEdition' 'NotImplemented')
            }
            Import-Required @('iSCSI', 'CimCmdlets')
        }
        switch ([string]$request.op) {
            'diagnose' {
                $response['facts'] = Get-Diagnosis
            }
            'ready' {
                $response['results'] = @(Set-Readiness $request)
            }
            'observe' {
                $response['facts'] = Get-Observation
            }
            'get_sessions' {
                $withConnections = [bool]$request.connections
                if ($request.disks) {
                    Import-Required @('Storage')
                }
                $response['sessions'] = @(Get-SessionData $withConnections ([bool]$request.disks))
            }
            'digest' {
                $digest = Get-Digest ($request.sessions -ne $false)
                foreach ($key in $digest.Keys) {
                    $response[$key] = $digest[$key]
                }
            }
            'unbind_volumes' {
                # Each session's volumes out of the bound list (test: only which ones).
                Import-Required @('Storage')
                # keep_reconnecting: not the volumes of a target a persistent login brings back.
                $bound = @(Get-BoundPath)
                $ids = @($request.ids)
                $reconnecting = @()
                if ($bound.Count -eq 0) {
                    $ids = @()  # an empty list is the usual case: no disk query at all
                } elseif ($request.keep_reconnecting) {
                    $reconnecting = @(foreach ($login in @(Get-PersistentLoginData)) {
                            ([string]$login.TargetName).ToLowerInvariant()
                        })
                }
                $response['results'] = @(
                    foreach ($id in $ids) {
                        try {
                            $session = Get-IscsiSession -SessionIdentifier ([string]$id) -ErrorAction Stop
                            $paths = @()
                            if ($reconnecting -notcontains ([string]$session.TargetNodeAddress).ToLowerInvariant()) {
                                $paths = @(Get-SessionBoundPath $session $bound)
                            }
                        } catch {
                            [ordered]@{ id = [string]$id; path = $null; ok = $false; error = (ConvertTo-ErrorData $_) }
                            continue
                        }
                        foreach ($path in $paths) {
                            $item = [ordered]@{ id = [string]$id; path = $path; ok = $true }
                            try {
                                if (-not $request.test) {
                                    Remove-BoundPath $path
                                }
                            } catch {
                                $item['ok'] = $false
                                $item['error'] = ConvertTo-ErrorData $_
                            }
                            $item
                        }
                    }
                )
            }
            'get_persistent_logins' {
                $response['logins'] = @(Get-PersistentLoginData)
            }
            'remove_persistent_logins' {
                $response['results'] = @(
                    foreach ($login in @($request.logins)) {
                        $item = [ordered]@{ ok = $true }
                        try {
                            Remove-PersistentLogin $login
                        } catch {
                            $item['ok'] = $false
                            $item['error'] = ConvertTo-ErrorData $_
                        }
                        $item
                    }
                )
            }
            'unregister' {
                $response['results'] = @(
                    Invoke-PerItem @($request.ids) {
                        param($Id)
                        Unregister-IscsiSession -SessionIdentifier $Id -ErrorAction Stop
                    }
                )
            }
            'register' {
                $response['results'] = @(
                    Invoke-PerItem @($request.ids) {
                        param($Id)
                        Register-Session $Id $request $secret
                    }
                )
            }
            'get_target_portals' {
                $response['portals'] = @(
                    foreach ($portal in @(Get-IscsiTargetPortal -ErrorAction Stop)) {
                        Select-Fields $portal $PortalFields
                    }
                )
            }
            'add_target_portal' {
                Add-TargetPortal $request $secret
            }
            'remove_target_portal' {
                $options = @{
                    TargetPortalAddress    = [string]$request.address
                    TargetPortalPortNumber = [uint16]$request.port
                }
                Add-Optional $options 'InitiatorPortalAddress' $request.initiator_portal_address
                Remove-IscsiTargetPortal @options -Confirm:$false -ErrorAction Stop
            }
            'update_target_portal' {
                $options = @{
                    TargetPortalAddress    = [string]$request.address
                    TargetPortalPortNumber = [uint16]$request.port
                }
                $null = Update-IscsiTargetPortal @options -ErrorAction Stop
            }
            'get_targets' {
                $response['targets'] = @(
                    foreach ($target in @(Get-IscsiTarget -ErrorAction Stop)) {
                        Select-Fields $target $TargetFields
                    }
                )
            }
            'connect_target' {
                Connect-Target $request $secret
            }
            'disconnect' {
                # Each item names its target: Disconnect-IscsiTarget selects targets by node
                # address and calls Disconnect(SessionIdentifier) on each one selected.
                $response['results'] = @(
                    foreach ($item in @($request.sessions)) {
                        $result = [ordered]@{ id = [string]$item.id; ok = $true }
                        try {
                            Disconnect-IscsiTarget -NodeAddress ([string]$item.node_address) `
                                -SessionIdentifier ([string]$item.id) -Confirm:$false -ErrorAction Stop
                        } catch {
                            $result['ok'] = $false
                            $result['error'] = ConvertTo-ErrorData $_
                        }
                        $result
                    }
                )
            }
            'set_chap_secret' {
                # The initiator's mutual-CHAP secret, through the CIM method (no logged parameter).
                $call = @{
                    Namespace = $StorageNamespace; ClassName = 'MSFT_iSCSISession'
                    MethodName = 'SetCHAPSecret'; Arguments = @{ ChapSecret = $secret['chap_secret'] }
                }
                Invoke-CheckedMethod $call 'MSFT_iSCSISession.SetCHAPSecret'
            }
            'mpio_claim' {
                $response['claim'] = Get-MsdsmClaim
            }
            'rescan' {
                # Update-HostStorageCache: the Storage module's rescan (new LUNs, new disks).
                Import-Required @('Storage')
                Update-HostStorageCache -ErrorAction Stop
            }
            default {
                $message = 'unknown operation: ' + [string]$request.op
                throw (New-ErrorRecord $message 'IscsiUnknownOperation' 'InvalidArgument')
            }
        }
    } catch {
        $response = [ordered]@{ v = 5; ok = $false; error = (ConvertTo-ErrorData $_) }
    } finally {
        # Nothing decoded from the request outlives it (an in-process runspace lives on).
        $secret.Clear()
        $Payload = $null
        $parts = $null
        $bytes = $null
    }
    $responseJson = ConvertTo-Json -InputObject $response -Depth 8 -Compress -ErrorAction Stop
    [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($responseJson))
}

if ($Serve) {
    # Run as an installed file (powershell.exe -File main.ps1 -Serve): it reads the
    # requests from stdin itself, as the bootstrap does for the -EncodedCommand mode.
    while ($null -ne ($line = [Console]::In.ReadLine())) {
        if ($line.Length -gt 0) {
            [Console]::Out.WriteLine('ISCSI1 ' + (Invoke-Request $line))
            [Console]::Out.Flush()
        }
    }
} else {
    Invoke-Request $Payload
}
