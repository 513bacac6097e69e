"""Sphinx configuration: the user guide (Markdown, MyST) and the reference generated from the
loader modules' docstrings (autodoc). ``./dev docs`` builds it with warnings as errors;
nothing is fetched from the network (no intersphinx).

The loader modules are imported under the names the wheel gives them
(``saltext_win_iscsi.modules.iscsi`` and so on): ``salt/_utils`` goes on ``sys.path`` and
each ``saltext_win_iscsi.<kind>`` package is pointed at the repository's ``salt/_<kind>``
folder, as setuptools' ``package-dir`` does for the wheel. Salt's dunders are only read
inside functions, so importing needs Salt itself and nothing more.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "salt" / "_utils"))
sys.path.insert(0, str(REPO / "docs"))

import saltext_win_iscsi  # noqa: E402

for _kind in saltext_win_iscsi.LOADER_KINDS:
    _package = types.ModuleType(f"saltext_win_iscsi.{_kind}")
    _package.__path__ = [str(REPO / "salt" / f"_{_kind}")]
    sys.modules[_package.__name__] = _package

project = "saltext-win-iscsi"
author = "saltext-win-iscsi contributors"
copyright = "saltext-win-iscsi contributors"  # noqa: A001 (Sphinx's name)
release = version = saltext_win_iscsi.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "loader_reference",  # docs/loader_reference.py: summaries, every function documented
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

# Salt's loader calls the functions by their module's virtual name (iscsi.get_sessions):
# no module path before each function.
add_module_names = False
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
autosummary_generate = False

html_theme = "alabaster"
html_title = f"saltext-win-iscsi {release}"
html_static_path: list[str] = []
