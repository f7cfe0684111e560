"""The side-runtime wire protocol, shared by zoomake and the runner scripts beside this file.

A runner is a script run by another Python (the framework's own environment, e.g. pycaffe with
NumPy 1.x). It reads requests on stdin and writes one response per request on its original
stdout; everything else the framework prints goes to stderr. Each message is one frame::

    u64le len(header) | header: UTF-8 JSON object | u64le len(arrays) | arrays: .npz or empty

Requests (``header["op"]``) and their responses (``{"ok": true, ...}`` or
``{"ok": false, "error": "one line"}``):

- ``hello`` -> ``{framework, version, python, numpy, ...}``
- ``load {files: {role: path}}`` -> ``{model: id, inputs: [{name, shape}], outputs: [...],
  blobs: [...]}`` (``blobs``: every intermediate value that ``run`` can return)
- ``run {model, outputs: [...] | null | "all"}`` + npz of inputs -> ``{seconds}`` + npz of
  outputs (``null``: the model's outputs; ``"all"``: every blob, for a first-divergence search;
  ``seconds``: the framework's own time, so callers can measure the protocol's overhead)
- ``check {files}`` (Caffe): whether this build can parse the net and has its layer types
- ``free {model}``, ``exit``

Only the standard library and NumPy: this module runs in both environments.
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np

_LEN = struct.Struct("<Q")


def encode(header: dict, arrays: dict | None = None) -> bytes:
    names = list(arrays or ())
    # Tensor names travel in the header; npz members are a0, a1, ... (a blob may be named
    # anything, e.g. "file", which np.savez would take for its own argument).
    head = json.dumps({**header, "arrays": names}).encode("utf-8")
    body = b""
    if names:
        buf = io.BytesIO()
        # Uncompressed: zlib would cost more than the pipe saves for float tensors.
        # np.require, not np.ascontiguousarray: that one turns a 0-d tensor into shape (1,).
        np.savez(
            buf, **{f"a{i}": np.require(arrays[n], requirements="C") for i, n in enumerate(names)}
        )
        body = buf.getvalue()
    return _LEN.pack(len(head)) + head + _LEN.pack(len(body)) + body


def decode_arrays(header: dict, body: bytes) -> dict:
    names = header.get("arrays") or []
    if not names:
        return {}
    with np.load(io.BytesIO(body), allow_pickle=False) as npz:
        return {n: npz[f"a{i}"] for i, n in enumerate(names)}


def read_exact(stream, n: int) -> bytes | None:
    """``n`` bytes from a blocking binary stream, or None at end of file."""
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream) -> tuple[dict, dict] | None:
    raw = read_exact(stream, _LEN.size)
    if raw is None:
        return None
    head = read_exact(stream, _LEN.unpack(raw)[0])
    raw = read_exact(stream, _LEN.size) if head is not None else None
    body = read_exact(stream, _LEN.unpack(raw)[0]) if raw is not None else None
    if body is None:
        return None
    header = json.loads(head.decode("utf-8"))
    return header, decode_arrays(header, body)
