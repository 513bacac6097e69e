# A loopback iSCSI target on this one Windows Server host, for tests/windows.
#   powershell -ExecutionPolicy Bypass -File tests\windows\setup-target.ps1             set up
#   powershell -ExecutionPolicy Bypass -File tests\windows\setup-target.ps1 -Teardown   remove
# Elevated, Windows Server 2016 or newer, Windows PowerShell 5.1.
#
# The recipe (after the iSCSI set-up of kubernetes-csi/csi-proxy's integration tests, which
# its authors ran on clean GCP VMs and took OUT of their GitHub-hosted CI in 2020 because it
# did not work there): the iSCSI Target Server role, AllowLoopBack=1 (DWORD) under
# HKLM:\SOFTWARE\Microsoft\iSCSI Target and a WinTarget restart, MSiSCSI started, a RAM-disk
# virtual disk, a target admitting every initiator (Iqn:*) named at random per run, and this
# host's own IPv4 address as the portal: the target refuses 127.0.0.1 and 0.0.0.0 here.
# A smoke login (connect, check, disconnect) proves the target works before any test runs.
#
# Writes artifacts\windows-target.json (target IQN, name, portal, port; tests/windows reads
# it) and, on GitHub Actions, ISCSI_TEST_TARGET, _PORTAL and _TARGET_NAME to $env:GITHUB_ENV.
# NOT run by us: we have no Windows host. See tests/windows/README.md.
[CmdletBinding()]
param(
    [switch]$Teardown,
    [string]$PortalAddress = '',
    [string]$StateFile = '',
    [int]$Retries = 5
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$TargetKey = 'HKLM:\SOFTWARE\Microsoft\iSCSI Target'
if (-not $StateFile) {
    $StateFile = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '..\..\artifacts\windows-target.json'))
}

function Invoke-WithRetry([string]$What, [scriptblock]$Step) {
    for ($attempt = 1; ; $attempt++) {
        try {
            return (& $Step)
        } catch {
            if ($attempt -ge $Retries) {
                throw "$What failed after $attempt attempts: $($_.Exception.Message)"
            }
            Write-Warning "$What failed (attempt $attempt of $Retries): $($_.Exception.Message)"
            Start-Sleep -Seconds (3 * $attempt)
        }
    }
}

function Assert-Elevated {
    $principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'run this script from an elevated (Administrator) Windows PowerShell'
    }
}

function Get-PortalAddress {
    # This host's own IPv4 address: the one on the interface of the default route.
    $address = $PortalAddress
    if (-not $address) {
        $route = Get-NetRoute -AddressFamily IPv4 -DestinationPrefix '0.0.0.0/0' |
            Sort-Object -Property RouteMetric | Select-Object -First 1
        if ($null -eq $route) {
            throw 'no IPv4 default route: pass -PortalAddress <this host IPv4 address>'
        }
        $address = Get-NetIPAddress -AddressFamily IPv4 -InterfaceIndex $route.ifIndex |
            Where-Object { $_.IPAddress -notlike '169.254.*' } |
            Select-Object -First 1 -ExpandProperty IPAddress
    }
    if (-not $address -or $address -like '127.*' -or $address -eq '0.0.0.0') {
        throw "not a usable portal address: '$address' (the target refuses loopback and any)"
    }
    $address
}

function Enable-LoopbackTarget {
    $feature = Invoke-WithRetry 'Install-WindowsFeature FS-iSCSITarget-Server' {
        Install-WindowsFeature -Name FS-iSCSITarget-Server
    }
    Write-Host "FS-iSCSITarget-Server: Success=$($feature.Success) RestartNeeded=$($feature.RestartNeeded)"
    if ([string]$feature.RestartNeeded -eq 'Yes') {
        throw 'installing FS-iSCSITarget-Server needs a restart: restart, then run this again'
    }
    if (-not (Test-Path $TargetKey)) {
        $null = New-Item -Path $TargetKey -Force
    }
    $null = New-ItemProperty -Path $TargetKey -Name AllowLoopBack -PropertyType DWord -Value 1 -Force
    Invoke-WithRetry 'Restart-Service WinTarget' { Restart-Service -Name WinTarget -Force }
    Set-Service -Name MSiSCSI -StartupType Automatic
    Invoke-WithRetry 'Start-Service MSiSCSI' { Start-Service -Name MSiSCSI }
}

function New-TestTarget($State) {
    $disk = "ramdisk:scratch-$($State.target_name).vhdx"
    $State.virtual_disk = $disk
    Write-State $State
    Invoke-WithRetry 'New-IscsiVirtualDisk' { $null = New-IscsiVirtualDisk -Path $disk -SizeBytes 64MB }
    $target = Invoke-WithRetry 'New-IscsiServerTarget' {
        New-IscsiServerTarget -TargetName $State.target_name -InitiatorIds @('Iqn:*')
    }
    $State.target_iqn = [string]$target.TargetIqn
    Write-State $State
    Invoke-WithRetry 'Add-IscsiVirtualDiskTargetMapping' {
        Add-IscsiVirtualDiskTargetMapping -TargetName $State.target_name -Path $disk
    }
    Invoke-WithRetry 'New-IscsiTargetPortal' {
        $null = New-IscsiTargetPortal -TargetPortalAddress $State.portal -TargetPortalPortNumber $State.port
    }
    Invoke-WithRetry "discovery of $($State.target_iqn)" {
        $null = Update-IscsiTarget -ErrorAction SilentlyContinue
        if (-not (Get-IscsiTarget | Where-Object NodeAddress -EQ $State.target_iqn)) {
            throw "the initiator does not list $($State.target_iqn) at $($State.portal)"
        }
    }
}

function Test-Login($State) {
    # One non-persistent login and logout: the target answers over loopback.
    $session = Invoke-WithRetry 'smoke login (Connect-IscsiTarget)' {
        Connect-IscsiTarget -NodeAddress $State.target_iqn -TargetPortalAddress $State.portal `
            -TargetPortalPortNumber $State.port -IsPersistent $false
    }
    Write-Host "smoke login: session $($session.SessionIdentifier), connected=$($session.IsConnected)"
    Disconnect-IscsiTarget -NodeAddress $State.target_iqn -SessionIdentifier $session.SessionIdentifier `
        -Confirm:$false
}

function Write-State($State) {
    # Written before each step, so that -Teardown can undo a set-up that failed half-way.
    $null = New-Item -ItemType Directory -Path (Split-Path -Parent $StateFile) -Force
    $json = ConvertTo-Json -InputObject $State -Depth 4
    [IO.File]::WriteAllText([IO.Path]::GetFullPath($StateFile), $json, [Text.UTF8Encoding]::new($false))
}

function Invoke-Step([string]$What, [scriptblock]$Step, [Collections.Generic.List[string]]$Problems) {
    try {
        $null = & $Step
    } catch {
        $Problems.Add("${What}: $($_.Exception.Message)")
        Write-Warning "${What}: $($_.Exception.Message)"
    }
}

function Remove-TestTarget {
    # Every step runs, each only if its object exists; any failure is reported at the end.
    if (-not (Test-Path $StateFile)) {
        Write-Host "nothing to remove: no $StateFile"
        return
    }
    $state = Get-Content -Raw -Path $StateFile | ConvertFrom-Json
    $problems = [Collections.Generic.List[string]]::new()
    if ($state.target_iqn) {
        Invoke-Step 'initiator clean-up' {
            # The tests' own helper: unregister, remove persistent logins, disconnect.
            $env:ISCSI_TEST_ARGS = ConvertTo-Json -Compress -InputObject @{ target = $state.target_iqn }
            $helper = Join-Path $PSScriptRoot 'host-actions.ps1'
            $line = [string](powershell.exe -NoProfile -ExecutionPolicy Bypass -File $helper -Action cleanup |
                    Where-Object { "$_" -like 'HOSTACTION *' } | Select-Object -Last 1)
            Write-Host $line
            if (-not $line) {
                throw 'host-actions.ps1 gave no answer'
            }
            $answer = ConvertFrom-Json -InputObject $line.Substring('HOSTACTION '.Length)
            if (-not $answer.ok -or $answer.result.left_sessions -or $answer.result.left_logins) {
                throw "sessions or persistent logins left: $line"
            }
        } $problems
    }
    Invoke-Step 'Remove-IscsiTargetPortal' {
        $portals = @(Get-IscsiTargetPortal -ErrorAction SilentlyContinue)
        if ($portals | Where-Object TargetPortalAddress -EQ $state.portal) {
            Remove-IscsiTargetPortal -TargetPortalAddress $state.portal -Confirm:$false
        }
    } $problems
    # A set-up that failed before the role was installed left nothing on the target side.
    $targetServer = $null -ne (Get-Command -Name Get-IscsiServerTarget -ErrorAction SilentlyContinue)
    Invoke-Step 'Remove-IscsiServerTarget' {
        $targets = @(if ($targetServer) { Get-IscsiServerTarget -ErrorAction SilentlyContinue })
        if ($targets | Where-Object TargetName -EQ $state.target_name) {
            Remove-IscsiServerTarget -TargetName $state.target_name
        }
    } $problems
    Invoke-Step 'Remove-IscsiVirtualDisk' {
        $disks = @(if ($targetServer) { Get-IscsiVirtualDisk -ErrorAction SilentlyContinue })
        if ($state.virtual_disk -and ($disks | Where-Object Path -EQ $state.virtual_disk)) {
            Remove-IscsiVirtualDisk -Path $state.virtual_disk
        }
    } $problems
    Invoke-Step 'AllowLoopBack as it was' {
        if ($null -eq $state.allow_loopback_before) {
            Remove-ItemProperty -Path $TargetKey -Name AllowLoopBack -ErrorAction SilentlyContinue
        } else {
            Set-ItemProperty -Path $TargetKey -Name AllowLoopBack -Value ([int]$state.allow_loopback_before)
        }
        if (Get-Service -Name WinTarget -ErrorAction SilentlyContinue) {
            Restart-Service -Name WinTarget -Force
        }
    } $problems
    if ($problems.Count -gt 0) {
        throw "teardown left $($problems.Count) problem(s), ${StateFile} kept: $($problems -join '; ')"
    }
    Remove-Item -Path $StateFile
    Write-Host "removed target $($state.target_iqn) (the FS-iSCSITarget-Server role stays installed)"
}

Assert-Elevated
if ($Teardown) {
    Remove-TestTarget
    return
}
if (Test-Path $StateFile) {
    Write-Host "a previous run left ${StateFile}: removing its target first"
    Remove-TestTarget
}
$state = [ordered]@{
    target_name           = 'salt-' + [Guid]::NewGuid().ToString('N').Substring(0, 12)
    target_iqn            = ''
    portal                = Get-PortalAddress
    port                  = 3260
    virtual_disk          = ''
    allow_loopback_before = $null
}
if (Test-Path $TargetKey) {
    $state.allow_loopback_before = (Get-ItemProperty -Path $TargetKey).AllowLoopBack
}
Write-State $state
Enable-LoopbackTarget
New-TestTarget $state
Write-State $state
Test-Login $state
if ($env:GITHUB_ENV) {
    Add-Content -Path $env:GITHUB_ENV -Encoding ASCII -Value "ISCSI_TEST_TARGET=$($state.target_iqn)"
    Add-Content -Path $env:GITHUB_ENV -Encoding ASCII -Value "ISCSI_TEST_PORTAL=$($state.portal)"
    Add-Content -Path $env:GITHUB_ENV -Encoding ASCII -Value "ISCSI_TEST_TARGET_NAME=$($state.target_name)"
}
Write-Host "iSCSI test target ready: $($state.target_iqn) at $($state.portal):$($state.port)"
Write-Host "state: $([IO.Path]::GetFullPath($StateFile))"
