"""An installed copy of the main script, run with ``powershell.exe -File`` (``iscsi.script_path``).

The default start hands the bootstrap to ``-EncodedCommand`` and the main script to it on
stdin; under a WDAC policy both run in ConstrainedLanguage, where the script cannot work.
A ``main.ps1`` installed on the host and signed by a signer the policy trusts keeps
FullLanguage when run with ``-File`` (docs/security.md). The file must be this version's
script: it is read and compared before every start, its Authenticode signature block
aside, so that an upgrade cannot leave an older script answering a newer protocol.
"""

from __future__ import annotations

import hashlib

from saltext_win_iscsi.errors import ChannelError, safe_text
from saltext_win_iscsi.windows.powershell.scripts import MAIN
from saltext_win_iscsi.windows.wire import FILE_ARGS, SERVE, script_text


def check_installed(path: str) -> None:
    """ChannelError unless ``path`` holds this version's main script."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ChannelError(
            f"iSCSI: cannot read iscsi.script_path {safe_text(path)}: {exc.strerror or exc}"
        ) from None
    if script_text(raw) != MAIN:
        expected = hashlib.sha256(MAIN.encode("utf-8")).hexdigest()
        raise ChannelError(
            f"iSCSI: iscsi.script_path {safe_text(path)} is not this version's main.ps1 "
            f"(expected SHA-256 {expected} of its text, see docs/security.md): install and "
            "sign the script shipped with this version"
        )


def file_command(executable: str, path: str) -> list[str]:
    return [executable, *FILE_ARGS, path, SERVE]
