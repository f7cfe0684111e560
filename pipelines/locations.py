"""Where a build reads its zoo and writes its artifacts.

Like ``make``, zoomake works on the current directory: the recipes are ``./recipes`` and the
build goes to ``./build``, whether zoomake runs from its own checkout or from an installed wheel
(the code's location never decides where user data goes). ``ZOOMAKE_RECIPES`` and
``ZOOMAKE_BUILD`` point elsewhere; the CLI's ``--recipes``/``--build`` set those variables, so
doit's worker processes see the same directories.
"""

from __future__ import annotations

import os
from pathlib import Path

# zoomake's own code (a checkout or site-packages): code fingerprints and the docs tasks only.
CODE_ROOT = Path(__file__).resolve().parents[1]


def recipes_dir() -> Path:
    return Path(os.environ.get("ZOOMAKE_RECIPES") or "recipes").absolute()


def build_dir() -> Path:
    return Path(os.environ.get("ZOOMAKE_BUILD") or "build").absolute()


def is_checkout() -> bool:
    """True when the code runs from zoomake's source tree (not from an installed wheel)."""
    return (CODE_ROOT / "pyproject.toml").is_file() and (CODE_ROOT / "docs").is_dir()
