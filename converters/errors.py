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
