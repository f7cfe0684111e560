"""The environment of an offline doit build of a test zoo in its own directories."""

from __future__ import annotations

import os
from pathlib import Path


def offline_zoo_env(base: Path, recipes: Path, models_dir: Path) -> dict[str, str]:
    """os.environ plus recipes, build and cache under ``base``, models only from the mirror."""
    return {
        **os.environ,
        "ZOOMAKE_RECIPES": str(recipes),
        "ZOOMAKE_BUILD": str(base / "build"),
        "ZOOMAKE_CACHE": str(base / "cache"),
        "ZOOMAKE_MIRROR": str(models_dir),
        "ZOOMAKE_OFFLINE": "1",
    }
