# salt iscsi extension, main script, protocol 2.
# In: $Payload, base64 of a UTF-8 JSON request. Out: base64 of a UTF-8 JSON response.
# Request values are only ever used as parameter values, never as script text.
param([string]$Payload)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

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

function ConvertTo-ErrorData($Record) {
    [ordered]@{
        message  = $Record.Exception.Message
        category = $Record.CategoryInfo.Category.ToString()
        error_id = $Record.FullyQualifiedErrorId
        hresult  = '0x{0:X8}' -f $Record.Exception.HResult
    }
}

function Select-Fields($Object, [string[]]$Fields) {
    $data = [ordered]@{}
    foreach ($field in $Fields) {
        $data[$field] = $Object.$field
    }
    $data
}

function Get-SessionData([bool]$WithConnections) {
    foreach ($session in @(Get-IscsiSession)) {
        $data = Select-Fields $session $SessionFields
        if ($WithConnections) {
            $data['Connections'] = @(
                foreach ($connection in @(Get-IscsiConnection -IscsiSession $session)) {
                    Select-Fields $connection $ConnectionFields
                }
            )
        }
        $data
    }
}

function Invoke-PerSession([object[]]$Ids, [scriptblock]$Action) {
    foreach ($id in $Ids) {
        $item = [ordered]@{ id = [string]$id; ok = $true }
        try {
            $null = & $Action ([string]$id)
        } catch {
            $item['ok'] = $false
            $item['error'] = ConvertTo-ErrorData $_
        }
        $item
    }
}

function Get-PersistentLoginData {
    $class = 'MSiSCSIInitiator_PersistentLoginClass'
    foreach ($login in @(Get-CimInstance -Namespace 'root/wmi' -ClassName $class)) {
        [ordered]@{
            TargetName          = [string]$login.TargetName
            InitiatorInstance   = [string]$login.InitiatorInstance
            InitiatorPortNumber = [uint32]$login.InitiatorPortNumber
            TargetPortalAddress = [string]$login.TargetPortal.Address
            TargetPortalPort    = [uint16]$login.TargetPortal.Port
        }
    }
}

function Remove-PersistentLogin($Login) {
    # iscsicli is the initiator's documented interface for this; its arguments are
    # checked to be plain names and numbers before they reach its command line.
    $plain = '^[A-Za-z0-9._:\\[\]-]+$'
    $values = @($Login.InitiatorInstance, $Login.TargetName, $Login.TargetPortalAddress)
    foreach ($value in $values) {
        if ([string]$value -notmatch $plain) {
            throw (New-Object System.ArgumentException 'not a plain iSCSI name or address')
        }
    }
    $port = [uint32]$Login.InitiatorPortNumber
    $portArgument = if ($port -eq [uint32]::MaxValue) { '*' } else { [string]$port }
    $output = & iscsicli.exe RemovePersistentTarget ([string]$Login.InitiatorInstance) `
        ([string]$Login.TargetName) $portArgument ([string]$Login.TargetPortalAddress) `
        ([string][uint16]$Login.TargetPortalPort) 2>&1
    if ($LASTEXITCODE -ne 0) {
        $text = (@($output) | Where-Object { "$_".Trim() } | Select-Object -Last 1)
        throw (New-Object System.InvalidOperationException "$text (iscsicli exit code $LASTEXITCODE)")
    }
}

$response = [ordered]@{ v = 2; ok = $true }
try {
    $requestJson = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($Payload))
    $request = ConvertFrom-Json -InputObject $requestJson
    switch ([string]$request.op) {
        'get_sessions' {
            $response['sessions'] = @(Get-SessionData ([bool]$request.connections))
        }
        'digest' {
            $ids = @(
                Get-IscsiSession | Where-Object { $_.IsPersistent } |
                    ForEach-Object { [string]$_.SessionIdentifier } | Sort-Object
            )
            $logins = @(
                Get-PersistentLoginData | ForEach-Object { $_.Values -join '|' } | Sort-Object
            )
            $text = ($ids -join "`n") + "`n--`n" + ($logins -join "`n")
            $sha = [Security.Cryptography.SHA256]::Create()
            $hash = $sha.ComputeHash([Text.Encoding]::UTF8.GetBytes($text))
            $response['count'] = $ids.Count
            $response['logins'] = $logins.Count
            $response['digest'] = -join ($hash | ForEach-Object { $_.ToString('x2') })
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
                Invoke-PerSession @($request.ids) {
                    param($Id)
                    Unregister-IscsiSession -SessionIdentifier $Id
                }
            )
        }
        'register' {
            $options = @{ IsMultipathEnabled = [bool]$request.is_multipath_enabled }
            if ($request.chap_username) { $options['ChapUsername'] = [string]$request.chap_username }
            if ($request.chap_secret) { $options['ChapSecret'] = [string]$request.chap_secret }
            $response['results'] = @(
                Invoke-PerSession @($request.ids) {
                    param($Id)
                    Register-IscsiSession -SessionIdentifier $Id @options
                }
            )
        }
        default {
            throw (New-Object System.ArgumentException 'unknown operation')
        }
    }
} catch {
    $response = [ordered]@{ v = 2; ok = $false; error = (ConvertTo-ErrorData $_) }
}
$responseJson = ConvertTo-Json -InputObject $response -Depth 6 -Compress
[Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($responseJson))
