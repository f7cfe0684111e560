"""Heavy runtimes are optional extras (``pip install "zoomake[openvino]"``).

A zoo without OpenVINO targets should not need OpenVINO's 180 MB. Whatever needs an optional
package asks here first, so a missing one is one line naming the extra to install, not an
ImportError traceback (or, in a child process, its last line).
"""

from __future__ import annotations

import importlib
import importlib.util

from converters.errors import ConversionError


def _extras() -> dict[str, tuple[str, str]]:
    """import name -> (pip extra of zoomake, what the user asked for that needs it): declared by
    each format (``Format.packages``/``extra``/``purpose``). Imported here, not at the top:
    ``formats`` sits above ``converters`` and this is the one lookup it serves."""
    from formats import extras

    return extras()


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(module: str):
    """Import an optional runtime, or raise a ConversionError naming the extra to install."""
    extra, purpose = _extras()[module]
    if not available(module):
        raise ConversionError(
            f'{purpose} needs {module}, which is not installed: pip install "zoomake[{extra}]"'
        )
    return importlib.import_module(module)
