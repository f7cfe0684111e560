"""Atomic, durable file output and ONNX load/save.

Every artifact is written to a temporary name beside its final path and renamed into place only
once complete, so an interrupted build never leaves a file that looks finished (``os.replace``
is atomic on POSIX within one file system). The data is fsynced before the rename and the
directory after it, so "never looks finished" also holds across a power loss.

Temporaries are named ``.<final name>.zoomake-tmp-<random>`` (files or directories): a process
killed with -9 cannot clean up after itself, so the next writer of the same file removes them
(``sweep_temporaries``; every doit task does it for its targets before it runs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from converters.errors import ConversionError

# mkstemp creates files 0600; artifacts get the permissions a plain open() would give them.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
TEMP_MARK = ".zoomake-tmp-"


def temp_prefix(final: str | os.PathLike) -> str:
    """The name every temporary of ``final`` starts with (``.<name>.zoomake-tmp-``)."""
    return f".{Path(final).name}{TEMP_MARK}"


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or a directory's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.replace`` after fsyncing ``src`` (a file, or a directory and the files in it),
    then fsync the destination directory so the rename itself is on the disk."""
    src = Path(src)
    if src.is_dir():
        for f in src.rglob("*"):
            if f.is_file():
                fsync_path(f)
    fsync_path(src)
    os.replace(src, dst)
    fsync_path(Path(dst).parent)


def sweep_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries a killed writer of ``path`` left beside it; returns them."""
    final = Path(path)
    prefix = temp_prefix(final)
    try:
        names = [e.name for e in os.scandir(final.parent) if e.name.startswith(prefix)]
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        stale = final.parent / name
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    final = Path(path)
    refuse_directories([final])
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(final), dir=final.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        durable_replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def refuse_directories(paths) -> None:
    """Fail before any work if an output path is an existing directory (a file's rename over
    it fails only at the very end, after a whole conversion, with an EISDIR traceback)."""
    for p in map(Path, paths):
        if p.is_dir():
            raise ConversionError(
                f"{p}: is an existing directory, the output must be a file name "
                f"(e.g. {p / 'model'}{p.suffix or '.onnx'})"
            )


@contextlib.contextmanager
def temp_dir_beside(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary directory beside ``path`` (named for it), removed when the block ends;
    what the block renames out of it stays."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), dir=final.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_together(files: list[tuple[Path, bytes | list]]) -> None:
    """Write each file under a temporary name, then rename them all, the first one last.

    The first file is the one a reader opens first (a prototxt, a symbol); its stale version is
    removed before anything is renamed, so an old first file never sits beside new weights.
    A file's data is bytes or a list of buffers written in order (no joined copy).
    """
    with contextlib.ExitStack() as stack:
        for path, data in files:  # exits run in reverse: the first file is renamed last
            tmp = stack.enter_context(atomic_output(path))
            with open(tmp, "wb") as f:
                for chunk in [data] if isinstance(data, bytes | bytearray) else data:
                    f.write(chunk)
        with contextlib.suppress(FileNotFoundError):
            files[0][0].unlink()


def save_onnx(model, path: str | os.PathLike) -> None:
    """Serialize an ``onnx.ModelProto`` to ``path`` atomically (single file, no external data)."""
    data = model.SerializeToString()
    if len(data) >= 2**31:
        raise ConversionError(
            f"{path}: model is {len(data)} bytes, over protobuf's 2 GiB single-file limit"
        )
    atomic_write_bytes(path, data)


def load_onnx(path: str | os.PathLike):
    """Load an ONNX model, turning unreadable files into a one-line ConversionError."""
    import onnx
    from google.protobuf.message import DecodeError

    p = Path(path)
    if not p.is_file():
        raise ConversionError(f"{p}: ONNX file not found")
    try:
        # Binary protobuf whatever the suffix: onnx.load would parse a .prototxt as text format.
        model = onnx.load(str(p), format="protobuf")
    except onnx.checker.ValidationError as exc:
        # onnx.load resolves external data and refuses locations outside the model's folder
        # (absolute paths, ``..``): a model file must not make us read arbitrary files.
        raise ConversionError(f"{p}: external data refused: {first_line(exc)}") from None
    except OSError as exc:  # an external data file that is missing or unreadable
        raise ConversionError(f"{p}: cannot read the model's external data ({exc})") from None
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ConversionError(f"{p}: not an ONNX model (unreadable: {first_line(exc)})") from None
    # Other protobufs (a .caffemodel) often decode as an empty ModelProto with unknown fields.
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ConversionError(f"{p}: not an ONNX model (no IR version or no graph)")
    _check_utf8(model.graph, p)
    return model


def _check_utf8(graph, path: Path) -> None:
    """Refuse names and string attributes that are not UTF-8, which ONNX requires.

    Protobuf's Python runtime hands such proto2 strings over as ``bytes`` instead of ``str``;
    every later step (handlers, messages, onnx's C++ checker) would trip over them somewhere
    else. The walk touches names only, never tensor data.
    """

    def bad(value, what: str) -> None:
        if isinstance(value, bytes):
            raise ConversionError(
                f"{path}: {what} {value[:40]!r} is not valid UTF-8 (ONNX strings must be)"
            )

    for vi in [*graph.input, *graph.output, *graph.value_info]:
        bad(vi.name, "value name")
    for t in graph.initializer:
        bad(t.name, "initializer name")
    for node in graph.node:
        label = node.name if isinstance(node.name, str) else "?"
        for what in ("name", "op_type", "domain"):
            bad(getattr(node, what), f"node '{label}' {what}")
        for value in [*node.input, *node.output]:
            bad(value, f"node '{label}' input/output")
        for attr in node.attribute:
            bad(attr.name, f"node '{label}' attribute name")
            for sub in [attr.g, *attr.graphs] if attr.type in (5, 10) else []:
                _check_utf8(sub, path)  # AttributeProto.GRAPH = 5, GRAPHS = 10


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (ONNX errors span many lines)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def onnx_errors(where: str, what: str) -> Iterator[None]:
    """Turn what onnx's checker and shape inference raise on a bad model into one line.

    Besides their own error types they raise ``UnicodeDecodeError`` when a name or string
    attribute is not UTF-8 (protobuf keeps the bytes, the C++ -> Python hand-over fails).
    """
    import onnx

    try:
        yield
    except UnicodeDecodeError as exc:
        raise ConversionError(
            f"{where}: {what}: a name or string in the model is not valid UTF-8 "
            f"(byte {exc.object[exc.start : exc.start + 1]!r} in {exc.object[:40]!r})"
        ) from None
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConversionError(f"{where}: {what}: {first_line(exc)}") from None


def varint(n: int) -> bytes:
    """Protobuf base-128 varint encoding of a non-negative integer."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def len_field(number: int, length: int) -> bytes:
    """Protobuf key and length prefix of a length-delimited field."""
    return varint(number << 3 | 2) + varint(length)


class FileRange:
    """``length`` bytes of file ``path`` from ``offset``: a big weight left where it is stored.

    ``copy_to`` copies them into the output file through one 16 MiB buffer, so they are never
    held whole; ``read`` is one ``pread``. A file replaced,
    rewritten or resized since the range was taken is an error, never a wrong or short tensor.
    """

    def __init__(self, path: str | os.PathLike, offset: int, length: int, stamp: str = ""):
        """``stamp``: the file's identity when the range was taken (``stamp()`` of an earlier
        range); by default, the file's identity now."""
        self.path, self.offset, self.length = Path(path), offset, length
        if stamp:
            self._stamp = tuple(int(v) for v in stamp.split(":"))
        else:
            self._stamp = self._identity(os.stat(self.path))

    @staticmethod
    def _identity(st: os.stat_result) -> tuple[int, ...]:
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def stamp(self) -> str:
        """The file's identity (device, inode, size, mtime) this range was taken at."""
        return ":".join(map(str, self._stamp))

    def sub(self, offset: int, length: int) -> FileRange:
        """``length`` bytes from ``offset`` of this range, as a range of the same file."""
        return FileRange(self.path, self.offset + offset, length, self.stamp())

    def check(self) -> None:
        """ConversionError if the file is no longer the one the range was taken of."""
        self._open().close()

    def _open(self):
        try:
            f = open(self.path, "rb", buffering=0)  # noqa: SIM115 (the caller closes it: with)
        except FileNotFoundError:
            raise self._changed() from None
        if self._identity(os.fstat(f.fileno())) != self._stamp:
            f.close()
            raise self._changed()
        return f

    def __len__(self) -> int:
        return self.length

    def _changed(self) -> ConversionError:
        return ConversionError(f"{self.path}: file changed while being read")

    def read(self) -> bytes:
        return self.read_at(0, self.length)

    def read_at(self, start: int, n: int) -> bytes:
        """``n`` of the bytes from ``start`` (relative to the range)."""
        with self._open() as f:
            data = os.pread(f.fileno(), n, self.offset + start)
        if len(data) != n:
            raise self._changed()
        return data

    def read_into(self, start: int, buf: memoryview) -> None:
        """Fill ``buf`` with the bytes from ``start`` (relative to the range)."""
        with self._open() as f:
            done = 0
            while done < len(buf):
                n = os.preadv(f.fileno(), [buf[done:]], self.offset + start + done)
                if n == 0:
                    raise self._changed()
                done += n

    CHUNK = 1 << 24  # bytes per read in copy_to

    def copy_to(self, out) -> None:
        """Append the bytes to the open binary file ``out``, 16 MiB at a time through one
        buffer (``pread`` + ``write``: on ext4 4x faster than ``copy_file_range``, which the
        kernel does as a splice, measured with 550 MB)."""
        with self._open() as src:
            buf = memoryview(bytearray(min(self.length, self.CHUNK)))
            done = 0
            while done < self.length:
                want = buf[: min(len(buf), self.length - done)]
                n = os.preadv(src.fileno(), [want], self.offset + done)
                if n == 0:
                    raise self._changed()
                out.write(want[:n])
                done += n
