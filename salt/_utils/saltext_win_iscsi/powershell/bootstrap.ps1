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
