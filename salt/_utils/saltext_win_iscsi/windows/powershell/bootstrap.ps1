# salt iscsi extension: the process entry point, passed to powershell.exe with -EncodedCommand.
# Reads the main script (base64, first stdin line), then answers each further stdin line
# (one request) with one stdout line: 'ISCSI1 ' + the main script's answer.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') {
    # Constrained language (WDAC/AppLocker lockdown) forbids [Console], [Convert] and
    # [scriptblock]::Create below: say so in plain text and stop.
    'ISCSI1-LANGUAGE ' + $ExecutionContext.SessionState.LanguageMode
    exit 3
}
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$mainText = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([Console]::In.ReadLine()))
$main = [scriptblock]::Create($mainText)
while ($null -ne ($line = [Console]::In.ReadLine())) {
    if ($line.Length -gt 0) {
        $answer = & $main $line
        [Console]::Out.WriteLine('ISCSI1 ' + $answer)
        [Console]::Out.Flush()
    }
}
