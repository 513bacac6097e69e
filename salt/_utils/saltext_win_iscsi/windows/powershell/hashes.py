"""SHA-256 of what the extension runs, for allow-listing (docs/security.md)."""

from __future__ import annotations

import hashlib

from saltext_win_iscsi.windows.powershell.scripts import BOOTSTRAP, MAIN
from saltext_win_iscsi.windows.protocol import encode_powershell_command


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def script_hashes() -> dict[str, str]:
    """The scripts' texts (UTF-8, LF line ends, as shipped) and the ``-EncodedCommand``
    argument every powershell.exe start carries on its command line."""
    return {
        "bootstrap.ps1": _sha256(BOOTSTRAP),
        "main.ps1": _sha256(MAIN),
        "-EncodedCommand argument": _sha256(encode_powershell_command(BOOTSTRAP)),
    }


def main() -> None:
    """Print the table of docs/security.md: ``python -m saltext_win_iscsi.windows.powershell.hashes``."""
    for what, digest in script_hashes().items():
        print(f"| `{what}` | `{digest}` |")


if __name__ == "__main__":
    main()
