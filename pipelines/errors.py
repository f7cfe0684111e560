"""User-facing errors of the build pipeline."""


class ZoomakeError(Exception):
    """A problem with the user's recipes, files or environment; ``str()`` is the whole message."""
