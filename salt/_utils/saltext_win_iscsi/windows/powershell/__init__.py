"""The fixed PowerShell the extension runs: ``bootstrap.ps1`` and ``main.ps1``.

The ``.ps1`` files are the source, edited as PowerShell. Salt's file_roots sync copies only
Python files to minions, so ``scripts.py`` carries the same text as Python constants
(``BOOTSTRAP``, ``MAIN``); ``generate.py`` writes it (``./dev scripts``) and a unit test
fails while it is stale.
"""
