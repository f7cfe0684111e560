"""Read a Caffe prototxt (a text-format ``NetParameter``) with one-line errors.

Every failure is a ``ConversionError`` reading ``<file>:<line>:<col>: <what was wrong>``
(or ``<file>: <what>`` when there is no position), never a traceback.

Fields our schema does not know are kept, not fatal (issue 18): forks extend
``LayerParameter`` and its messages with their own fields (``yolov3_detection_output_param``,
``bn_param``, ...), and a user must be able to cut such a layer away with ``--outputs``.  A
scan over the text finds every field the schema lacks *inside a layer*, records its raw text
and position as an ``UnknownField`` of that layer, and blanks it (keeping line breaks, so
positions stay right) before protobuf parses the rest.  The converter then fails only where
that matters: a handler reads the message holding the field (a typo like ``kernal_size`` in
``convolution_param`` is still caught), or the layer is kept and unsupported; anywhere else
in a kept layer it is a warning.  Unknown fields at net level and every syntax error still
fail here with ``file:line:col``.  The scan runs only when protobuf's strict parse fails.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from converters.caffe.proto import caffe_pb2
from converters.errors import ConversionError

__all__ = ["UnknownField", "parse_prototxt", "parse_prototxt_text", "pooling_ceil_mode"]

# A '#' comment, or a quoted string (which may contain '#'); used to drop comments
# from bytes that are not UTF-8 (prototxts from some forks carry GBK comments).
_COMMENT_OR_STRING = re.compile(rb"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|#[^\n]*")
_LOCATION_PREFIX = re.compile(r"^\d+(?::\d+)? : ")


@dataclass(frozen=True)
class UnknownField:
    """A field the schema does not know, found inside a layer and left out of the parse."""

    owner: tuple[str, int]  # ("layer" | "layers", index in that list of the NetParameter)
    path: str  # dotted from the layer, e.g. "convolution_param.kernal_size"
    text: str  # the raw text, whitespace folded to single spaces
    line: int
    col: int

    @property
    def where(self) -> str:
        return f"{self.path} (line {self.line})"


def parse_prototxt(
    path: str | os.PathLike, unknown: list[UnknownField] | None = None
) -> caffe_pb2.NetParameter:
    """Parse the prototxt file at ``path``; fields unknown inside layers go to ``unknown``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConversionError(f"{p}: prototxt file not found") from None
    except OSError as exc:
        raise ConversionError(f"{p}: cannot read prototxt ({exc.strerror or exc})") from None
    return parse_prototxt_text(_decode(data, str(p)), filename=str(p), unknown=unknown)


def parse_prototxt_text(
    text: str, filename: str = "<string>", unknown: list[UnknownField] | None = None
) -> caffe_pb2.NetParameter:
    """Parse prototxt ``text``; ``filename`` only names the source in error messages.

    Fields the schema lacks inside a layer are appended to ``unknown`` (dropped when it is
    None); see the module docstring.
    """
    net = caffe_pb2.NetParameter()
    found: list = []
    try:
        text_format.Parse(text, net)
    except text_format.ParseError as exc:
        # Only now look for unknown fields: most nets have none, and the scan costs about
        # half a parse.
        found = _Scanner(text, filename).scan()
        if not found:
            raise ConversionError(_describe(exc, text, filename)) from None
        chars = list(text)
        for _field, start, end in found:
            for i in range(start, end):
                if chars[i] != "\n":
                    chars[i] = " "
        net = caffe_pb2.NetParameter()
        try:
            text_format.Parse("".join(chars), net)
        except text_format.ParseError as exc2:
            raise ConversionError(_describe(exc2, text, filename)) from None
    _check_pooling_round_modes(net, filename)
    if unknown is not None:
        unknown.extend(field for field, _, _ in found)
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


# Protobuf text format, as far as finding field boundaries needs: strings (adjacent ones
# concatenate), words (names, numbers, enum values, -inf, 1e-5f, 0x1F), and symbols.
_TEXT_TOKEN = re.compile(
    r"""(?:\s+|\#[^\n]*)*(?:(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<word>[-+]?[A-Za-z0-9_.]+(?:[-+][A-Za-z0-9_.]+)*)|(?P<sym>[{}<>\[\]:,;])"""
    r"""|(?P<eof>\Z)|(?P<bad>.))""",
    re.DOTALL,
)


class _Abort(Exception):
    """The text is not well-formed; protobuf's own parser will say where."""


class _Scanner:
    """Walk the text against the NetParameter descriptor and find fields it lacks."""

    def __init__(self, text: str, filename: str):
        self.text = text
        self.filename = filename
        self.tokens = []
        for m in _TEXT_TOKEN.finditer(text):
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind), m.start(kind), m.end(kind)))
            if kind in ("eof", "bad"):
                break
        self.i = 0
        self.found: list[tuple[UnknownField, int, int]] = []
        self.counts = {"layer": 0, "layers": 0}
        self.inside_unknown: list[str] = []  # names of the unknown fields being skipped

    def scan(self) -> list[tuple[UnknownField, int, int]]:
        try:
            self.message(caffe_pb2.NetParameter.DESCRIPTOR, None, None, "")
        except _Abort:
            kind, text, start, _ = self.tokens[min(self.i, len(self.tokens)) - 1]
            if self.inside_unknown:  # protobuf would only say the field is unknown
                line, col = self.position(start)
                found = "end of file" if kind == "eof" else repr(text)
                raise ConversionError(
                    f"{self.filename}:{line}:{col}: unexpected {found} inside field "
                    f"'{self.inside_unknown[-1]}'"
                ) from None
            # Otherwise text_format reports the syntax error, with the same position.
        return self.found

    def position(self, offset: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, offset) + 1
        return line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1

    def next(self):
        tok = self.tokens[min(self.i, len(self.tokens) - 1)]
        self.i += 1
        return tok

    def peek(self):
        return self.tokens[min(self.i, len(self.tokens) - 1)]

    def message(self, desc, close: str | None, owner, prefix: str) -> None:
        while True:
            kind, text, start, _ = self.next()
            if kind == "eof":
                if close is None:
                    return
                raise _Abort
            if kind == "sym" and text == close:
                return
            if kind == "sym" and text in ",;":
                continue
            if kind != "word":
                raise _Abort  # includes [extension] names, which caffe.proto never has
            field = desc.fields_by_name.get(text) if desc is not None else None
            sub = field.message_type if field is not None else None
            net_list = text if owner is None and field is not None and text in self.counts else None
            skipping = desc is not None and field is None
            if skipping:
                self.inside_unknown.append(text)
            end = self.value(sub, owner, f"{prefix}{text}.", net_list)
            if skipping:
                self.inside_unknown.pop()
                line, col = self.position(start)
                if owner is None:
                    raise ConversionError(
                        f"{self.filename}:{line}:{col}: '{text}' is not a NetParameter field "
                        f"(it is outside any layer, so it cannot be cut away)"
                    ) from None
                raw = " ".join(self.text[start:end].split())
                self.found.append((UnknownField(owner, prefix + text, raw, line, col), start, end))

    def value(self, desc, owner, prefix: str, net_list: str | None) -> int:
        """Consume one field's value (after its name); return the end offset."""
        if self.peek()[:2] == ("sym", ":"):
            self.next()
        if self.peek()[:2] == ("sym", "["):
            self.next()
            while True:
                if self.peek()[:2] == ("sym", "]"):
                    return self.next()[3]
                self.item(desc, owner, prefix, net_list)
                if self.peek()[:2] == ("sym", ","):
                    self.next()
        return self.item(desc, owner, prefix, net_list)

    def item(self, desc, owner, prefix: str, net_list: str | None) -> int:
        kind, text, _start, end = self.next()
        if kind == "sym" and text in "{<":
            if net_list is not None:  # one more entry of the net's layer list
                owner, prefix = (net_list, self.counts[net_list]), ""
                self.counts[net_list] += 1
            self.message(desc, "}" if text == "{" else ">", owner, prefix)
            return self.tokens[self.i - 1][3]
        if kind == "str":
            while self.peek()[0] == "str":
                end = self.next()[3]
            return end
        if kind == "word":
            return end
        raise _Abort
