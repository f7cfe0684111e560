"""Fetch pinned files into a content-addressed cache (http, https, file URLs; mirrors; offline).

Cache layout: ``<cache>/sha256/<first two hex>/<sha256>`` (read-only files) plus
``<cache>/tmp/`` for partial downloads and lock files. A file enters the cache only after
its size and SHA-256 were checked, by an atomic rename. The cache is not trusted after that:
every use re-hashes the entry (read-only modes do not stop root, and CI runs as root), and a
mismatch evicts it and fails naming both hashes. Build directories get private read-only
copies (or reflinks), never hard links, so a write to a build's source file cannot reach the
cache; ``check_fetched`` re-hashes those copies when a task reads them. A per-hash ``flock``
serialises builds that want the same file (the second one waits, then finds it cached);
partial downloads keep a stable name under that lock so an interrupted download resumes with
an HTTP Range request, even in a later run.

Recipes are not trusted either: a URL's file name must be a plain name (no ``/``, ``\\``,
control character, ``.`` or ``..``, also after percent-decoding), local files must be regular
files and are read only up to the recipe's size + 1 byte, and HTTP downloads have a total
deadline of ``ZOOMAKE_FETCH_GRACE`` seconds plus the size at ``ZOOMAKE_FETCH_MIN_RATE``.

Environment: ``ZOOMAKE_CACHE`` (cache directory), ``ZOOMAKE_MIRROR`` (directories searched
first, recursively, for the URL's base name with a matching hash), ``ZOOMAKE_OFFLINE=1``
(never use the network), ``ZOOMAKE_FETCH_RETRIES`` / ``ZOOMAKE_FETCH_BACKOFF`` (retry
count and first back-off delay in seconds, doubled after each failure),
``ZOOMAKE_FETCH_MIN_RATE`` / ``ZOOMAKE_FETCH_GRACE`` (the HTTP deadline above, bytes per second
and seconds).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from converters.io import temp_prefix
from pipelines import safe_read
from pipelines.errors import ZoomakeError, os_error_line
from pipelines.fetch import http as http_get

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, temp names stay unique
    fcntl = None

DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 1.0
DEFAULT_TIMEOUT = 30.0
# The HTTP deadline: GRACE seconds (connecting, retries, a slow start) plus the file's size at
# MIN_RATE bytes/s. 100 kB/s is far below any working link yet keeps a trickling server from
# holding a build for hours; both are environment settings for slow networks.
DEFAULT_MIN_RATE = 100_000.0
DEFAULT_GRACE = 60.0
_UNLIMITED = 1 << 62
_FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int): clone a file's extents (copy-on-write)


class PinMismatch(ZoomakeError):
    """What the URL (or the mirror) holds is not the file the recipe pins: another size or
    sha256. The recipe's fault, or the upstream file's: a build says so against the recipe's
    file entry (``field``: ``sha256`` or ``size`` when only that one differs)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def name_problem(url: str) -> str | None:
    """Why the URL's (percent-decoded) base name is not a plain file name, or None.

    The name becomes ``build/<id>/source/<name>`` and the name looked for in the mirrors: a
    ``..%2F..%2Fx`` or ``%2Fetc%2Fx`` would write outside the build directory.
    """
    raw = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    name = urllib.parse.unquote(raw)
    shown = repr(name) + (" once percent-decoded" if name != raw else "")
    if not name:
        return "its file name is empty"
    if name in (".", ".."):
        return f"its file name is {shown}"
    if "/" in name or "\\" in name:
        return f"its file name {shown} contains a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"its file name {shown} contains a control character"
    return None


def url_basename(url: str) -> str:
    """The file name a URL points at (percent-decoded), e.g. ``det1.caffemodel``.

    ZoomakeError when that is no plain file name (see ``name_problem``).
    """
    problem = name_problem(url)
    if problem:
        raise ZoomakeError(f"{url}: expected a URL ending in a plain file name, but {problem}")
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def default_cache_dir() -> Path:
    """``$ZOOMAKE_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/zoomake``."""
    if os.environ.get("ZOOMAKE_CACHE"):
        return Path(os.environ["ZOOMAKE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "zoomake"


def cache_path(cache_dir: str | os.PathLike, sha256: str) -> Path:
    """Where the file with this hash lives in the cache."""
    return Path(cache_dir) / "sha256" / sha256[:2] / sha256


def mirror_dirs(mirrors=None) -> list[Path]:
    """Mirror directories: ``mirrors`` if given, else ``$ZOOMAKE_MIRROR`` split like PATH."""
    if mirrors is None:
        mirrors = os.environ.get("ZOOMAKE_MIRROR", "").split(os.pathsep)
    elif isinstance(mirrors, str | os.PathLike):
        mirrors = [mirrors]
    dirs = [Path(m).expanduser() for m in mirrors if str(m)]
    for d in dirs:
        if not d.is_dir():
            raise ZoomakeError(f"ZOOMAKE_MIRROR: {d} is not a directory")
    return dirs


def _env_number(name: str, default, kind, minimum=None):
    try:
        value = kind(os.environ[name]) if os.environ.get(name) else default
    except ValueError:
        raise ZoomakeError(f"{name}: expected a number, got {os.environ[name]!r}") from None
    if minimum is not None and not value > minimum:
        raise ZoomakeError(f"{name}: expected a number above {minimum}, got {value}")
    return value


def _got(sha: str, n: int, size: int) -> str:
    """What a read capped at ``size`` + 1 bytes found (the hash of a longer file would be its
    prefix's, so it is not shown)."""
    return f"more than {size} bytes" if n > size else f"sha256 {sha} ({n} bytes)"


def _evict(path: Path, inode: int | None) -> str:
    """Remove a bad cache or build file, unless someone replaced it since it was hashed."""
    try:
        if inode is None or os.stat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"could not remove it ({exc.strerror}): remove it by hand"
    return "removed it"


def _rehash(path: Path, sha256: str, size: int) -> tuple[str | None, int | None]:
    """Re-hash ``path`` (a regular file, read up to ``size`` + 1 bytes) against the recipe:
    ``(None, inode)`` when it has the sha256 and size, else ``(what was found, its inode or
    None)`` for the one-line error and ``_evict``. FileNotFoundError when nothing is there
    (a symlink to nothing is there: it is found as a dangling link)."""
    inode = None
    try:
        with safe_read.open_regular(path) as f:
            inode = os.fstat(f.fileno()).st_ino
            got, n = safe_read.hash_stream(f, size + 1)
    except safe_read.NotReadable as exc:
        if not os.path.lexists(path):
            raise FileNotFoundError(str(path)) from None
        return f"it {exc}", None
    return (None if got == sha256 and n == size else _got(got, n, size)), inode


def _cached(final: Path, url: str, sha256: str, size: int) -> bool:
    """True when the cache entry exists and still has the recipe's hash (re-hashed on each use:
    file modes do not stop root). A damaged entry is evicted and the fetch fails loudly."""
    try:
        found, inode = _rehash(final, sha256, size)
    except FileNotFoundError:
        return False
    if found is None:
        return True
    done = _evict(final, inode)
    raise ZoomakeError(
        f"{final}: corrupt cache entry for {url}: {found}, expected sha256 {sha256} "
        f"({size} bytes); {done}, the next build fetches the file again"
    )


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(lock_path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _commit(
    tmp: Path,
    final: Path,
    url: str,
    sha256: str,
    size: int,
    got: tuple[str, int] | None = None,
    *,
    show_digest: bool = True,
) -> None:
    """Check ``tmp`` against size and hash; rename it into the cache or delete it and fail."""
    # ``got`` comes from a read capped at size + 1 bytes; a download is hashed whole here.
    capped = got is not None
    got_sha, got_size = got or safe_read.sha256_file(tmp, _UNLIMITED)
    if got_size != size or got_sha != sha256:
        tmp.unlink(missing_ok=True)
        what = "size mismatch" if got_size != size else "checksum mismatch"
        if show_digest:
            found = f"got {_got(got_sha, got_size, size if capped else _UNLIMITED)}"
        else:
            # A file:// URL can name any file on the machine (a recipe from a pull request,
            # built in CI): printing its digest would let the recipe's author test guesses of
            # a secret's content against the log. Its size says no more than `ls` does.
            n = f"more than {size}" if got_size > size else str(got_size)
            found = f"got a different file ({n} bytes; its sha256 is not shown for a local file)"
        raise PinMismatch(
            f"{url}: {what}: expected sha256 {sha256} ({size} bytes), {found}; download deleted",
            "size" if got_size != size else "sha256",
        )
    os.chmod(tmp, 0o444)  # read-only: a reminder for users; root ignores it, hence the re-hash
    os.replace(tmp, final)


def _temp_name(final: Path) -> Path:
    return (
        final.parent.parent.parent
        / "tmp"
        / f"{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )


def _from_mirror(
    name: str, sha256: str, size: int, dirs: list[Path], final: Path, url: str
) -> tuple[bool, list[tuple[bool, str]]]:
    """Copy the first mirror file called ``name`` with the right size and hash into the cache.

    Returns (found, findings): findings say what else was found under that name and why it
    does not fit, each flagged fatal (same size but another hash, or not a readable regular
    file: the mirror or the recipe is wrong) or not (another size: likely an unrelated file of
    a common name such as deploy.prototxt, so a download may still find the right one).
    """
    findings: list[tuple[bool, str]] = []
    for base in dirs:
        for root, subdirs, files in os.walk(base):
            candidate = Path(root) / name
            if name in subdirs:
                findings.append((True, f"found {candidate} in the mirror, but it is a directory"))
            if name not in files:
                continue
            tmp = _temp_name(final)
            try:
                with safe_read.open_regular(candidate) as f:
                    got_size = safe_read.size_of(f)
                    if got_size != size:  # cheap: do not hash wrong files
                        findings.append(
                            (
                                False,
                                f"found {candidate} in the mirror, {got_size} bytes, "
                                f"the recipe says {size} bytes",
                            )
                        )
                        continue
                    got = safe_read.hash_stream(f, size + 1, copy_to=tmp)
            except safe_read.NotReadable as exc:
                findings.append((True, f"found {candidate} in the mirror, but it {exc}"))
                continue
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            if got == (sha256, size):
                _commit(tmp, final, url, sha256, size, got)
                return True, []
            tmp.unlink(missing_ok=True)
            findings.append(
                (
                    True,
                    f"found {candidate} in the mirror, {_got(got[0], got[1], size)}, "
                    f"the recipe says sha256 {sha256}",
                )
            )
    return False, findings


def _copy_local(url: str, sha256: str, size: int, final: Path, trusted: list[Path]) -> None:
    src = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    show_digest = safe_read.is_under(src, trusted)
    tmp = _temp_name(final)
    try:
        with safe_read.open_regular(src) as f:
            got_size = safe_read.size_of(f)
            if got_size != size:  # do not even start reading a file of the wrong size
                raise PinMismatch(
                    f"{url}: size mismatch: expected {size} bytes, {src} has {got_size} bytes",
                    "size",
                )
            # size + 1 bytes at most: enough to notice a file that grew meanwhile.
            got = safe_read.hash_stream(f, size + 1, copy_to=tmp)
    except safe_read.NotReadable as exc:
        raise ZoomakeError(f"{url}: {src} {exc}") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename == str(tmp):  # a full or read-only cache, not the source's fault
            raise ZoomakeError(
                f"{url}: cannot write the download cache: {os_error_line(exc)}"
            ) from None
        raise ZoomakeError(f"{url}: cannot read {src} ({exc.strerror})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _commit(tmp, final, url, sha256, size, got, show_digest=show_digest)


def _download(url, sha256, size, final: Path, *, progress, **settings) -> None:
    # Under the per-hash lock the partial file can keep a stable name (resumable by a later
    # run); without locks (no fcntl) it must be private to this process.
    tmp_dir = final.parent.parent.parent / "tmp"
    private = f"{final.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    part = tmp_dir / (f"{final.name}.part" if fcntl else private)
    try:
        http_get.download(url, part, size, progress=progress, **settings)
    except ZoomakeError:
        if fcntl is None:  # pragma: no cover - nobody can resume a private partial file
            part.unlink(missing_ok=True)
        raise
    _commit(part, final, url, sha256, size)


def fetch_file(
    url: str,
    sha256: str,
    size: int,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirrors=None,
    offline: bool | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    min_rate: float | None = None,
    grace: float | None = None,
    progress: bool | None = None,
) -> Path:
    """Return the path of the verified file in the cache, fetching it if needed.

    Order: cache, mirrors (``ZOOMAKE_MIRROR``), then the URL itself (unless offline;
    ``file://`` URLs are read even offline). Raises ZoomakeError naming the URL.
    """
    name = url_basename(url)  # a hostile name fails before anything touches the disk
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = cache_path(cache, sha256)
    if _cached(final, url, sha256, size):
        return final
    offline = env_flag("ZOOMAKE_OFFLINE") if offline is None else offline
    dirs = mirror_dirs(mirrors)
    if retries is None:
        retries = _env_number("ZOOMAKE_FETCH_RETRIES", DEFAULT_RETRIES, int)
    if backoff is None:
        backoff = _env_number("ZOOMAKE_FETCH_BACKOFF", DEFAULT_BACKOFF, float)
    if min_rate is None:
        min_rate = _env_number("ZOOMAKE_FETCH_MIN_RATE", DEFAULT_MIN_RATE, float, minimum=0)
    if grace is None:
        grace = _env_number("ZOOMAKE_FETCH_GRACE", DEFAULT_GRACE, float, minimum=0)
    if progress is None:
        progress = sys.stderr.isatty() and not os.environ.get("CI")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        (cache / "tmp").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZoomakeError(
            f"{url}: cannot create cache directory {cache} ({exc.strerror})"
        ) from None
    http = {
        "retries": retries,
        "backoff": backoff,
        "timeout": timeout,
        "min_rate": min_rate,
        "grace": grace,
    }
    try:
        _fetch_locked(url, name, sha256, size, cache, final, dirs, offline, progress, http)
    except OSError as exc:  # local disk trouble (full, permissions), not the URL's fault
        raise ZoomakeError(
            f"{url}: cannot write the download cache {cache}: {os_error_line(exc)}"
        ) from None
    return final


def _fetch_locked(url, name, sha256, size, cache, final, dirs, offline, progress, http) -> None:
    with _locked(cache / "tmp" / f"{sha256}.lock"):
        if _cached(final, url, sha256, size):  # another build fetched it while we waited
            return
        found, findings = _from_mirror(name, sha256, size, dirs, final, url)
        if found:
            return
        mirror_note = "; ".join(text for _, text in findings)
        if any(fatal for fatal, _ in findings):
            raise PinMismatch(f"{url}: {mirror_note}")
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme == "file":
            _copy_local(url, sha256, size, final, [*dirs, cache])
        elif offline and findings:
            raise PinMismatch(f"offline: {url}: {mirror_note}")
        elif offline:
            where = (
                f"ZOOMAKE_MIRROR={os.pathsep.join(map(str, dirs))}"
                if dirs
                else "ZOOMAKE_MIRROR (not set)"
            )
            raise ZoomakeError(
                f"offline: {url} ({name}, sha256 {sha256}) is not in the cache or in {where}"
            )
        elif scheme in ("http", "https"):
            try:
                _download(url, sha256, size, final, progress=progress, **http)
            except ZoomakeError as exc:
                if not findings:
                    raise
                if isinstance(exc, PinMismatch):
                    raise PinMismatch(f"{exc}; {mirror_note}", exc.field) from None
                raise ZoomakeError(f"{exc}; {mirror_note}") from None
        else:
            raise ZoomakeError(f"{url}: unsupported URL scheme (expected http, https or file)")


def _reflink(src, tmp: Path) -> bool:
    """Clone ``src``'s extents into a new file ``tmp`` (btrfs, XFS, ...): a copy that costs no
    space and that a write cannot share. False where the file system cannot."""
    if fcntl is None or not sys.platform.startswith("linux"):
        return False
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.ioctl(fd, _FICLONE, src.fileno())
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def materialize(
    cached: str | os.PathLike, dest: str | os.PathLike, sha256: str | None = None
) -> Path:
    """Place a read-only copy of a cached file at ``dest`` atomically, checked against ``sha256``.

    A reflink where the file system has them, else a plain copy; never a hard link: the build's
    file and the cache entry would be one inode, so a write to ``build/<id>/source/x`` (root
    ignores the read-only mode) would corrupt the cache for every later build too.
    """
    src, dest = Path(cached), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Named like every temporary (converters.io): the next fetch of this file sweeps it.
    tmp = dest.with_name(f"{temp_prefix(dest)}{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with safe_read.open_regular(src) as f:
            if _reflink(f, tmp):
                got, _ = safe_read.sha256_file(tmp, _UNLIMITED)
            else:
                got, _ = safe_read.hash_stream(f, _UNLIMITED, copy_to=tmp)
        if sha256 is not None and got != sha256:
            raise ZoomakeError(
                f"{src}: sha256 {got} while copying it to {dest}, expected {sha256}; "
                "the cache entry changed during the copy, run the build again"
            )
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
    except safe_read.NotReadable as exc:
        tmp.unlink(missing_ok=True)
        raise ZoomakeError(f"{dest}: cannot place {src}: it {exc}") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ZoomakeError(f"{dest}: cannot place {src.name} ({exc.strerror})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def check_fetched(path: str | os.PathLike, ref: dict, task: str) -> None:
    """Re-hash a fetched file of ``build/<id>/source/`` before a task reads it.

    The task's converter and the verification's reference runtime read the same file: a byte
    changed after ``fetch`` would be converted, verified against itself and pass. A mismatch
    removes the file (so the next ``doit`` reruns ``task``, the fetch) and fails.
    """
    path = Path(path)
    want, size = ref["sha256"], ref["size"]
    try:
        found, inode = _rehash(path, want, size)
    except FileNotFoundError:
        raise ZoomakeError(f"{path}: missing, the next doit runs {task} again") from None
    if found is None:
        return
    done = _evict(path, inode)
    raise ZoomakeError(
        f"{path}: {found}, the recipe says sha256 {want} ({size} bytes): the file changed "
        f"after {task}; {done}, the next doit fetches it again"
    )


def fetch_to(ref: dict, dest_dir: str | os.PathLike, **kwargs) -> Path:
    """Fetch a recipe file reference ``{url, sha256, size}`` to ``dest_dir/<url basename>``."""
    cached = fetch_file(ref["url"], ref["sha256"], ref["size"], **kwargs)
    return materialize(cached, Path(dest_dir) / url_basename(ref["url"]), ref["sha256"])
