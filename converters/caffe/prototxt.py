"""Read a Caffe prototxt (a text-format ``NetParameter``) with one-line errors.

Every failure is a ``ConversionError`` reading ``<file>:<line>:<col>: <what was wrong>``
(or ``<file>: <what>`` when there is no position), never a traceback.

Parsing is strict: an unknown field is an error, where OpenCV silently drops it.  A
typo like ``kernal_size`` would otherwise change the numbers without a word.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from google.protobuf import text_format

from converters.caffe.proto import caffe_pb2
from converters.errors import ConversionError

__all__ = ["parse_prototxt", "parse_prototxt_text", "pooling_ceil_mode"]

# A '#' comment, or a quoted string (which may contain '#'); used to drop comments
# from bytes that are not UTF-8 (prototxts from some forks carry GBK comments).
_COMMENT_OR_STRING = re.compile(rb"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|#[^\n]*")
_LOCATION_PREFIX = re.compile(r"^\d+(?::\d+)? : ")


def parse_prototxt(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """Parse the prototxt file at ``path``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConversionError(f"{p}: prototxt file not found") from None
    except OSError as exc:
        raise ConversionError(f"{p}: cannot read prototxt ({exc.strerror or exc})") from None
    return parse_prototxt_text(_decode(data, str(p)), filename=str(p))


def parse_prototxt_text(text: str, filename: str = "<string>") -> caffe_pb2.NetParameter:
    """Parse prototxt ``text``; ``filename`` only names the source in error messages."""
    net = caffe_pb2.NetParameter()
    try:
        text_format.Parse(text, net)
    except text_format.ParseError as exc:
        raise ConversionError(_describe(exc, text, filename)) from None
    _check_pooling_round_modes(net, filename)
    return net


def pooling_ceil_mode(param: caffe_pb2.PoolingParameter) -> bool:
    """True if pooling output sizes round up (Caffe's default), from either spelling.

    BVLC writes ``round_mode: CEIL|FLOOR``; the SSD/OpenCV fork writes ``ceil_mode``.
    ``parse_prototxt`` has already rejected layers where the two disagree.
    """
    if param.HasField("ceil_mode"):
        return param.ceil_mode
    return param.round_mode == caffe_pb2.PoolingParameter.CEIL


def _decode(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # Caffe's C++ parser skips comments byte-wise, so non-UTF-8 comments are legal there;
    # drop them (keeping every line break, so positions stay right) and try again.
    stripped = _COMMENT_OR_STRING.sub(
        lambda m: m.group() if m.group()[:1] in (b'"', b"'") else b"", data
    )
    try:
        return stripped.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = stripped.count(b"\n", 0, exc.start) + 1
        col = exc.start - (stripped.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConversionError(
            f"{filename}:{line}:{col}: not UTF-8 text (byte 0x{stripped[exc.start]:02x}); "
            "expected a text prototxt, is this a binary .caffemodel?"
        ) from None


def _describe(exc: text_format.ParseError, text: str, filename: str) -> str:
    line, col = exc.GetLine(), exc.GetColumn()
    what = _LOCATION_PREFIX.sub("", str(exc), count=1)
    # The runtime echoes the whole source line in quotes before some messages; the
    # position already points there, so drop the echo to keep the message short.
    if line is not None and what.startswith("'"):
        source_lines = text.split("\n")
        if 0 < line <= len(source_lines):
            for echoed in (source_lines[line - 1], source_lines[line - 1] + "\n"):
                if what.startswith(f"'{echoed}': "):
                    what = what[len(echoed) + 4 :]
                    break
    what = " ".join(what.split())  # one line, whatever the runtime put in
    where = ":".join(str(part) for part in (filename, line, col) if part is not None)
    return f"{where}: {what}"


def _check_pooling_round_modes(net: caffe_pb2.NetParameter, filename: str) -> None:
    for layer in [*net.layer, *net.layers]:
        if not layer.HasField("pooling_param"):
            continue
        param = layer.pooling_param
        if param.HasField("ceil_mode") and param.HasField("round_mode"):
            round_is_ceil = param.round_mode == caffe_pb2.PoolingParameter.CEIL
            if param.ceil_mode != round_is_ceil:
                mode = caffe_pb2.PoolingParameter.RoundMode.Name(param.round_mode)
                raise ConversionError(
                    f"{filename}: layer '{layer.name}': pooling_param has round_mode: {mode} "
                    f"and ceil_mode: {str(param.ceil_mode).lower()}, which disagree; keep one"
                )
