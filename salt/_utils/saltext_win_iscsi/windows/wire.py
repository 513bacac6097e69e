"""How powershell.exe is started and how its answers are marked: the wire's fixed facts.

Free of Salt imports on purpose: a simulated host's stand-in for powershell.exe reads
these too, once per process. ``protocol`` encodes and decodes what travels this way.
"""

from __future__ import annotations

import re

PROTOCOL_VERSION = 5
RESPONSE_MARKER = "ISCSI1 "
# Printed instead of an answer when PowerShell runs in constrained language mode.
LANGUAGE_MARKER = "ISCSI1-LANGUAGE "

_QUIET = ("-NoLogo", "-NoProfile", "-NonInteractive")
POWERSHELL_ARGS = (*_QUIET, "-EncodedCommand")
# An installed main.ps1 (``iscsi.script_path``) is run with -File and serves requests.
FILE_ARGS = (*_QUIET, "-File")
SERVE = "-Serve"

# What Set-AuthenticodeSignature appends to a signed script.
_SIGNATURE = re.compile(r"\r?\n# SIG # Begin signature block\r?\n.*\Z", re.DOTALL)


def script_text(raw: bytes) -> str:
    """The script in an installed file: BOM, CRLF line ends and signature block aside."""
    text = raw.decode("utf-8-sig", "replace").replace("\r\n", "\n")
    return _SIGNATURE.sub("\n", text)
