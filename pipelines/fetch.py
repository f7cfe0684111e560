"""Fetch pinned files into a content-addressed cache (http, https, file URLs; mirrors; offline).

Cache layout: ``<cache>/sha256/<first two hex>/<sha256>`` (read-only files) plus
``<cache>/tmp/`` for partial downloads and lock files. A file enters the cache only after
its size and SHA-256 were checked, by an atomic rename, so a cache entry is always
complete and correct. A per-hash ``flock`` serialises builds that want the same file (the
second one waits, then finds it cached); partial downloads keep a stable name under that
lock so an interrupted download resumes with an HTTP Range request, even in a later run.

Environment: ``ZOOMAKE_CACHE`` (cache directory), ``ZOOMAKE_MIRROR`` (directories searched
first, recursively, for the URL's base name with a matching hash), ``ZOOMAKE_OFFLINE=1``
(never use the network), ``ZOOMAKE_FETCH_RETRIES`` / ``ZOOMAKE_FETCH_BACKOFF`` (retry
count and first back-off delay in seconds, doubled after each failure).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pipelines import http_get
from pipelines.errors import ZoomakeError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, temp names stay unique
    fcntl = None

DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 1.0
DEFAULT_TIMEOUT = 30.0


def url_basename(url: str) -> str:
    """The file name a URL points at (percent-decoded), e.g. ``det1.caffemodel``."""
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


def _env_number(name: str, default, kind):
    try:
        return kind(os.environ[name]) if os.environ.get(name) else default
    except ValueError:
        raise ZoomakeError(f"{name}: expected a number, got {os.environ[name]!r}") from None


def _is_cached(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


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


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _commit(
    tmp: Path, final: Path, url: str, sha256: str, size: int, got_sha: str | None = None
) -> None:
    """Check ``tmp`` against size and hash; rename it into the cache or delete it and fail."""
    got_size = tmp.stat().st_size
    got_sha = got_sha or _sha256_of(tmp)
    if got_size != size or got_sha != sha256:
        tmp.unlink(missing_ok=True)
        what = "size mismatch" if got_size != size else "checksum mismatch"
        raise ZoomakeError(
            f"{url}: {what}: expected sha256 {sha256} ({size} bytes), "
            f"got sha256 {got_sha} ({got_size} bytes); download deleted"
        )
    os.chmod(tmp, 0o444)  # cache entries are shared (hardlinked into builds): never edit in place
    os.replace(tmp, final)


def _temp_name(final: Path) -> Path:
    return (
        final.parent.parent.parent
        / "tmp"
        / f"{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )


def _copy_hashing(src: Path, dst: Path) -> str:
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(1 << 20):
            digest.update(block)
            fout.write(block)
    return digest.hexdigest()


def _from_mirror(url: str, sha256: str, size: int, dirs: list[Path], final: Path) -> bool:
    name = url_basename(url)
    for base in dirs:
        for root, _dirs, files in os.walk(base):
            if name not in files:
                continue
            candidate = Path(root) / name
            try:
                if candidate.stat().st_size != size:  # cheap: skip hashing wrong files
                    continue
                tmp = _temp_name(final)
                got = _copy_hashing(candidate, tmp)
            except OSError:
                continue
            if got == sha256:
                _commit(tmp, final, url, sha256, size, got)
                return True
            tmp.unlink(missing_ok=True)
    return False


def _copy_local(url: str, sha256: str, size: int, final: Path) -> None:
    src = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    tmp = _temp_name(final)
    try:
        got = _copy_hashing(src, tmp)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        raise ZoomakeError(f"{url}: file not found") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ZoomakeError(f"{url}: cannot read ({exc.strerror})") from None
    _commit(tmp, final, url, sha256, size, got)


def _download(url, sha256, size, final: Path, *, retries, backoff, timeout, progress) -> None:
    # Under the per-hash lock the partial file can keep a stable name (resumable by a later
    # run); without locks (no fcntl) it must be private to this process.
    tmp_dir = final.parent.parent.parent / "tmp"
    private = f"{final.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    part = tmp_dir / (f"{final.name}.part" if fcntl else private)
    try:
        http_get.download(
            url, part, size, retries=retries, backoff=backoff, timeout=timeout, progress=progress
        )
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
    progress: bool | None = None,
) -> Path:
    """Return the path of the verified file in the cache, fetching it if needed.

    Order: cache, mirrors (``ZOOMAKE_MIRROR``), then the URL itself (unless offline;
    ``file://`` URLs are read even offline). Raises ZoomakeError naming the URL.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = cache_path(cache, sha256)
    if _is_cached(final, size):
        return final
    offline = env_flag("ZOOMAKE_OFFLINE") if offline is None else offline
    dirs = mirror_dirs(mirrors)
    if retries is None:
        retries = _env_number("ZOOMAKE_FETCH_RETRIES", DEFAULT_RETRIES, int)
    if backoff is None:
        backoff = _env_number("ZOOMAKE_FETCH_BACKOFF", DEFAULT_BACKOFF, float)
    if progress is None:
        progress = sys.stderr.isatty() and not os.environ.get("CI")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        (cache / "tmp").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZoomakeError(
            f"{url}: cannot create cache directory {cache} ({exc.strerror})"
        ) from None
    try:
        _fetch_locked(
            url, sha256, size, cache, final, dirs, offline, retries, backoff, timeout, progress
        )
    except OSError as exc:  # local disk trouble (full, permissions), not the URL's fault
        raise ZoomakeError(f"{url}: {exc.strerror}: {exc.filename}") from None
    return final


def _fetch_locked(
    url, sha256, size, cache, final, dirs, offline, retries, backoff, timeout, progress
) -> None:
    with _locked(cache / "tmp" / f"{sha256}.lock"):
        if final.exists() and not _is_cached(final, size):
            final.unlink()  # damaged entry (the cache files are read-only; someone forced it)
        if _is_cached(final, size) or _from_mirror(url, sha256, size, dirs, final):
            return
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme == "file":
            _copy_local(url, sha256, size, final)
        elif offline:
            where = (
                f"ZOOMAKE_MIRROR={os.pathsep.join(map(str, dirs))}"
                if dirs
                else "ZOOMAKE_MIRROR (not set)"
            )
            raise ZoomakeError(
                f"offline: {url} ({url_basename(url)}, sha256 {sha256}) is not in the cache or in {where}"
            )
        elif scheme in ("http", "https"):
            _download(
                url,
                sha256,
                size,
                final,
                retries=retries,
                backoff=backoff,
                timeout=timeout,
                progress=progress,
            )
        else:
            raise ZoomakeError(f"{url}: unsupported URL scheme (expected http, https or file)")


def materialize(cached: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Place a cached file at ``dest`` atomically: a hard link, or a copy across devices."""
    src, dest = Path(cached), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if os.path.samefile(src, dest):
            return dest
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            os.link(src, tmp)
        except OSError:  # other file system, or links not supported
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ZoomakeError(f"{dest}: cannot place {src.name} ({exc.strerror})") from None
    return dest


def fetch_to(ref: dict, dest_dir: str | os.PathLike, **kwargs) -> Path:
    """Fetch a recipe file reference ``{url, sha256, size}`` to ``dest_dir/<url basename>``."""
    cached = fetch_file(ref["url"], ref["sha256"], ref["size"], **kwargs)
    return materialize(cached, Path(dest_dir) / url_basename(ref["url"]))
