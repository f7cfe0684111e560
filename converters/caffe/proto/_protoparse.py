"""A small proto2 parser: the subset caffe.proto uses -> ``FileDescriptorProto``.

Why not protoc: zoomake must run on any protobuf runtime >= 4.25 without grpcio-tools,
and generated ``_pb2`` files are tied to the protoc version that wrote them.  A
descriptor built at import time works with every runtime.

Supported: ``syntax = "proto2"``, ``package``, ``message`` (nested messages and enums),
``enum``, ``optional``/``repeated``/``required`` fields of scalar, message or enum type
(relative, dotted or fully-qualified names), ``[default = ...]`` (numbers incl.
negative/float/hex, ``inf``/``nan``, bools, strings, enum values) and
``[packed = true|false]``, ``//`` and ``/* */`` comments.  Anything else is an error
naming ``file:line:col``: the schema is ours, so a mistake in it is a developer error.
"""

from __future__ import annotations

import codecs
import math
import re
from typing import NamedTuple

from google.protobuf import descriptor_pb2

_F = descriptor_pb2.FieldDescriptorProto

_SCALARS = {
    "double": _F.TYPE_DOUBLE,
    "float": _F.TYPE_FLOAT,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "sint32": _F.TYPE_SINT32,
    "sint64": _F.TYPE_SINT64,
    "fixed32": _F.TYPE_FIXED32,
    "fixed64": _F.TYPE_FIXED64,
    "sfixed32": _F.TYPE_SFIXED32,
    "sfixed64": _F.TYPE_SFIXED64,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}
_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "sint32": (-(2**31), 2**31 - 1),
    "sfixed32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "sint64": (-(2**63), 2**63 - 1),
    "sfixed64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "fixed32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "fixed64": (0, 2**64 - 1),
}
_LABELS = {
    "optional": _F.LABEL_OPTIONAL,
    "repeated": _F.LABEL_REPEATED,
    "required": _F.LABEL_REQUIRED,
}
_MAX_FIELD_NUMBER = 2**29 - 1
_RESERVED_NUMBERS = range(19000, 20000)  # reserved for the protobuf implementation

# One match per token: skipped whitespace and comments are folded into the prefix, so
# the scanner runs ~6k matches for caffe.proto instead of twice that (import time).
_TOKEN_RE = re.compile(
    r"""
    (?:\s+|//[^\n]*|/\*.*?\*/)*
    (?:
      (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<ident>\.?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
    | (?P<symbol>[{}\[\];=,\-+])
    | (?P<eof>\Z)
    | (?P<bad>.)
    )
    """,
    re.VERBOSE | re.DOTALL,
)


class ProtoSchemaError(Exception):
    """The bundled .proto file is malformed (a developer error, not bad user input)."""


class _Token(NamedTuple):
    kind: str
    text: str
    pos: int  # offset in the source; line and column are computed only for errors


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        tokens.append(
            _Token(kind, m.group(kind) if kind != "eof" else "end of file", m.start(kind))
        )
        if kind in ("eof", "bad"):
            break
    return tokens


class _PendingField(NamedTuple):
    """A field whose type name and default are resolved once every type is known."""

    proto: descriptor_pb2.FieldDescriptorProto
    scope: str
    type_name: str | None
    default: tuple[str, _Token] | None
    token: _Token


class _Parser:
    def __init__(self, text: str, filename: str):
        self.filename = filename
        self.text = text
        self.tokens = _tokenize(text)
        if self.tokens[-1].kind == "bad":
            raise self.error(self.tokens[-1], f"unexpected character {self.tokens[-1].text!r}")
        self.i = 0
        self.file = descriptor_pb2.FileDescriptorProto(name=filename, syntax="proto2")
        self.pending: list[_PendingField] = []
        self.messages: set[str] = set()
        self.enums: dict[str, set[str]] = {}

    # -- token helpers -------------------------------------------------------------
    def error(self, token: _Token, what: str) -> ProtoSchemaError:
        line = self.text.count("\n", 0, token.pos) + 1
        col = token.pos - (self.text.rfind("\n", 0, token.pos) + 1) + 1
        return ProtoSchemaError(f"{self.filename}:{line}:{col}: {what}")

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> _Token:
        tok = self.next()
        if tok.text != text or tok.kind in ("string", "eof"):
            raise self.error(tok, f"expected '{text}', found '{tok.text}'")
        return tok

    def expect_kind(self, kind: str, what: str) -> _Token:
        tok = self.next()
        if tok.kind != kind:
            raise self.error(tok, f"expected {what}, found '{tok.text}'")
        return tok

    def simple_name(self, what: str) -> _Token:
        tok = self.expect_kind("ident", what)
        if "." in tok.text:
            raise self.error(tok, f"expected {what} without dots, found '{tok.text}'")
        return tok

    def minus(self) -> bool:
        """Consume a leading '-' if there is one."""
        if self.peek().kind == "symbol" and self.peek().text == "-":
            self.next()
            return True
        return False

    def integer(self) -> int:
        sign = -1 if self.minus() else 1
        tok = self.expect_kind("number", "an integer")
        if not re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", tok.text):
            raise self.error(tok, f"expected an integer, found '{tok.text}'")
        return sign * int(tok.text, 16 if tok.text[:2] in ("0x", "0X") else 10)

    # -- grammar -------------------------------------------------------------------
    def parse(self) -> descriptor_pb2.FileDescriptorProto:
        package = ""
        while self.peek().kind != "eof":
            tok = self.next()
            if tok.text == "syntax" and tok.kind == "ident":
                self.expect("=")
                value = self.expect_kind("string", "a syntax string")
                if value.text[1:-1] != "proto2":
                    raise self.error(value, f"only proto2 is supported, found {value.text}")
                self.expect(";")
            elif tok.text == "package" and tok.kind == "ident":
                if package or self.file.message_type or self.file.enum_type:
                    raise self.error(tok, "'package' must come once, before any definition")
                package = self.expect_kind("ident", "a package name").text
                self.file.package = package
                self.expect(";")
            elif tok.text == "message" and tok.kind == "ident":
                self.message(self.file.message_type.add(), "." + package if package else "")
            elif tok.text == "enum" and tok.kind == "ident":
                self.enum(self.file.enum_type.add(), "." + package if package else "")
            elif tok.text != ";":
                raise self.error(
                    tok, f"expected 'syntax', 'package', 'message' or 'enum', found '{tok.text}'"
                )
        self.resolve()
        return self.file

    def message(self, msg: descriptor_pb2.DescriptorProto, scope: str) -> None:
        name_tok = self.simple_name("a message name")
        msg.name = name_tok.text
        full = f"{scope}.{msg.name}"
        self.declare(full, name_tok)
        self.messages.add(full)
        self.expect("{")
        names: dict[str, _Token] = {}
        numbers: dict[int, str] = {}
        while True:
            tok = self.peek()
            if tok.text == "}" and tok.kind == "symbol":
                self.next()
                return
            if tok.kind == "ident" and tok.text == "message":
                self.next()
                self.message(msg.nested_type.add(), full)
            elif tok.kind == "ident" and tok.text == "enum":
                self.next()
                self.enum(msg.enum_type.add(), full)
            elif tok.kind == "ident" and tok.text in _LABELS:
                self.field(msg, full, names, numbers)
            elif tok.text == ";":
                self.next()
            else:
                raise self.error(
                    tok, f"expected a field label, 'message', 'enum' or '}}', found '{tok.text}'"
                )

    def field(self, msg, scope: str, names: dict, numbers: dict) -> None:
        label = _LABELS[self.next().text]
        type_tok = self.expect_kind("ident", "a field type")
        name_tok = self.simple_name("a field name")
        self.expect("=")
        number_tok = self.peek()
        number = self.integer()
        if name_tok.text in names:
            raise self.error(name_tok, f"field '{name_tok.text}' is already defined")
        if not 1 <= number <= _MAX_FIELD_NUMBER or number in _RESERVED_NUMBERS:
            raise self.error(number_tok, f"field number {number} is out of range or reserved")
        if number in numbers:
            raise self.error(
                number_tok, f"field number {number} is already used by '{numbers[number]}'"
            )
        names[name_tok.text] = name_tok
        numbers[number] = name_tok.text
        proto = msg.field.add(name=name_tok.text, number=number, label=label)
        scalar = _SCALARS.get(type_tok.text)
        if scalar is not None:
            proto.type = scalar
        default = None
        if self.peek().text == "[":
            self.next()
            while True:
                opt = self.simple_name("an option name")
                self.expect("=")
                if opt.text == "default":
                    if label == _F.LABEL_REPEATED:
                        raise self.error(opt, "repeated fields cannot have a default")
                    default = self.default_value()
                elif opt.text == "packed":
                    value = self.expect_kind("ident", "true or false")
                    if value.text not in ("true", "false"):
                        raise self.error(value, f"expected true or false, found '{value.text}'")
                    if label != _F.LABEL_REPEATED or type_tok.text in ("string", "bytes"):
                        raise self.error(opt, "packed applies to repeated numeric fields only")
                    proto.options.packed = value.text == "true"
                else:
                    raise self.error(opt, f"unsupported field option '{opt.text}'")
                if self.peek().text != ",":
                    break
                self.next()
            self.expect("]")
        self.expect(";")
        self.pending.append(
            _PendingField(proto, scope, None if scalar else type_tok.text, default, type_tok)
        )

    def default_value(self) -> tuple[str, _Token]:
        """Return the default as written (sign folded in) and its token, checked later."""
        negative = self.minus()
        tok = self.next()
        if tok.kind not in ("number", "ident", "string"):
            raise self.error(tok, f"expected a default value, found '{tok.text}'")
        if negative and tok.kind == "string":
            raise self.error(tok, "a string default cannot be negative")
        return ("-" if negative else "") + tok.text, tok

    def enum(self, enum: descriptor_pb2.EnumDescriptorProto, scope: str) -> None:
        name_tok = self.simple_name("an enum name")
        enum.name = name_tok.text
        full = f"{scope}.{enum.name}"
        self.declare(full, name_tok)
        values: set[str] = set()
        self.expect("{")
        while self.peek().text != "}":
            if self.peek().text == ";":
                self.next()
                continue
            value_tok = self.simple_name("an enum value name")
            self.expect("=")
            number = self.integer()
            self.expect(";")
            if value_tok.text in values:
                raise self.error(value_tok, f"enum value '{value_tok.text}' is already defined")
            values.add(value_tok.text)
            enum.value.add(name=value_tok.text, number=number)
        self.next()
        if not values:
            raise self.error(name_tok, f"enum '{enum.name}' has no values")
        self.enums[full] = values

    def declare(self, full: str, tok: _Token) -> None:
        if full in self.messages or full in self.enums:
            raise self.error(tok, f"'{full[1:]}' is already defined")

    # -- second pass: names and defaults -------------------------------------------
    def lookup(self, name: str, scope: str, tok: _Token) -> str:
        """Resolve a type reference with protobuf's rule: innermost scope first."""
        if name.startswith("."):
            candidates = [name]
        else:
            first = name.split(".", 1)[0]
            candidates = []
            parts = scope.split(".")
            for end in range(len(parts), 0, -1):
                prefix = ".".join(parts[:end])
                if f"{prefix}.{first}" in self.messages or f"{prefix}.{first}" in self.enums:
                    candidates = [f"{prefix}.{name}"]
                    break
        for full in candidates:
            if full in self.messages or full in self.enums:
                return full
        raise self.error(tok, f"unknown type '{name}'")

    def resolve(self) -> None:
        for pf in self.pending:
            if pf.type_name is not None:
                full = self.lookup(pf.type_name, pf.scope, pf.token)
                pf.proto.type_name = full
                pf.proto.type = _F.TYPE_MESSAGE if full in self.messages else _F.TYPE_ENUM
            if pf.default is not None:
                pf.proto.default_value = self.check_default(pf)

    def check_default(self, pf: _PendingField) -> str:
        text, tok = pf.default
        proto = pf.proto
        kind = next((k for k, v in _SCALARS.items() if v == proto.type), None)
        if proto.type == _F.TYPE_MESSAGE:
            raise self.error(tok, "message fields cannot have a default")
        if proto.type == _F.TYPE_ENUM:
            if text not in self.enums[proto.type_name]:
                raise self.error(tok, f"'{text}' is not a value of {proto.type_name[1:]}")
            return text
        if kind in ("string", "bytes"):
            if tok.kind != "string":
                raise self.error(tok, f"expected a quoted {kind} default, found '{text}'")
            if kind == "bytes":
                raise self.error(tok, "bytes defaults are not supported by this parser")
            return codecs.escape_decode(text[1:-1].encode("utf-8"))[0].decode("utf-8")
        if kind == "bool":
            if text not in ("true", "false"):
                raise self.error(tok, f"expected true or false, found '{text}'")
            return text
        if kind in ("float", "double"):
            if tok.kind == "ident" and text.lstrip("-") not in ("inf", "nan"):
                raise self.error(tok, f"expected a number, found '{text}'")
            value = float(text)
            return "nan" if math.isnan(value) else repr(value)
        if tok.kind != "number" or not re.fullmatch(r"-?(?:0[xX][0-9a-fA-F]+|\d+)", text):
            raise self.error(tok, f"expected an integer default, found '{text}'")
        value = int(text, 16 if "x" in text.lower() else 10)
        low, high = _INT_RANGES[kind]
        if not low <= value <= high:
            raise self.error(tok, f"default {value} does not fit {kind}")
        return str(value)


def parse_proto(
    text: str, filename: str, name: str | None = None
) -> descriptor_pb2.FileDescriptorProto:
    """Parse proto2 source ``text``; ``filename`` names it in errors, ``name`` in the pool."""
    file_proto = _Parser(text, filename).parse()
    file_proto.name = name or filename
    return file_proto
