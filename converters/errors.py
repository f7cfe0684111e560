"""Errors raised by converters for bad input.

Every error carries a one-line, self-contained message (file, layer or node, what was
expected, what was found). The CLI and the doit actions print ``str(err)`` and exit
non-zero; they never show a traceback for a ``ConversionError``.
"""


class ConversionError(Exception):
    """Bad or unsupported input to a converter: the message is meant for the user."""


class UnsupportedError(ConversionError):
    """The input is valid but uses something this converter cannot express."""


# No runtime holds a tensor of 2**40 elements (4 TiB of float32). Input shapes beyond it are
# refused, which keeps every shape product and int64 shape constant far from overflow.
MAX_TENSOR_ELEMENTS = 1 << 40


class ModelMismatch(ConversionError):
    """A requested input, output or input shape that the model does not have.

    ``str()`` is the message for the command line (it names the file and the flag);
    ``field`` (``inputs``/``outputs``, or ``source`` for a source key the model refuses: a
    PyTorch ``entry`` that does not import), ``key`` (the input name, the output's index or the
    source key),
    ``sub`` (e.g. ``shape``) and ``detail`` let a recipe build say the same against the
    recipe: ``recipes/x.yaml#/outputs/1: the model has no blob 'score'; did you mean 'scores'?``.
    """

    def __init__(self, message: str, *, field: str, key, detail: str, sub: str | None = None):
        super().__init__(message)
        self.field, self.key, self.sub, self.detail = field, key, sub, detail

    def pointer(self) -> str:
        return "/" + "/".join(str(p) for p in (self.field, self.key, self.sub) if p is not None)


def did_you_mean(name: str, known) -> str:
    """``; did you mean 'x'?`` for the closest of ``known``, or the list when none is close."""
    import difflib

    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return f"; it has: {shown or '(none)'}"
