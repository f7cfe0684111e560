"""pipelines.fetch.cache against damaged caches, odd mirrors, hostile recipes and hostile servers.

Every case must end in one line and quickly: the ones that used to hang (a FIFO, /dev/zero)
run under ``_within``, which turns a hang into a failure. Servers only on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import re
import signal
import time
from pathlib import Path

import pytest

from pipelines.errors import ZoomakeError
from pipelines.fetch import cache as fetch
from tests import test_fetch
from tests.test_fetch import FAST, PAYLOAD, PAYLOAD_SHA, _leftovers

# The local HTTP server and the environment reset of test_fetch, as fixtures of this module too.
server = test_fetch.server
_no_env = test_fetch._no_env

OTHER = PAYLOAD[:-1] + b"X"  # same size, another hash
OTHER_SHA = hashlib.sha256(OTHER).hexdigest()


class _Hang(Exception):
    """Not TimeoutError: that is an OSError, which the code under test may catch."""


@contextlib.contextmanager
def _within(seconds: float):
    """Fail instead of hanging: SIGALRM interrupts even a blocking open() of a FIFO."""

    def hang(*_):
        raise _Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _flip_byte(path: Path, offset: int | None = None) -> None:
    path.chmod(0o644)  # root could write anyway; be a careful user elsewhere
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x40
    path.write_bytes(bytes(data))


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text.strip() == text, text
    return text


def _closed_port_url(name: str = "net.bin") -> str:
    srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = srv.server_address[1]
    srv.server_close()
    return f"http://127.0.0.1:{port}/models/{name}"


# -- the cache is re-checked on every use ------------------------------------------------------
def test_corrupt_cache_entry_is_evicted_and_fails_naming_both_hashes(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "net.bin").write_bytes(PAYLOAD)
    url, cache = "https://example.invalid/net.bin", tmp_path / "cache"
    entry = fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=cache, mirrors=[mirror])
    _flip_byte(entry)
    bad = hashlib.sha256(entry.read_bytes()).hexdigest()
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=cache, mirrors=[mirror], offline=True
        )
    assert _one_line(err) == (
        f"{entry}: corrupt cache entry for {url}: sha256 {bad} ({len(PAYLOAD)} bytes), "
        f"expected sha256 {PAYLOAD_SHA} ({len(PAYLOAD)} bytes); removed it, "
        "the next build fetches the file again"
    )
    assert not entry.exists()
    again = fetch.fetch_file(
        url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=cache, mirrors=[mirror], offline=True
    )
    assert again.read_bytes() == PAYLOAD


def test_check_fetched_removes_a_changed_source_and_fails_naming_both_hashes(tmp_path):
    src = tmp_path / "build" / "m" / "source" / "net.bin"
    src.parent.mkdir(parents=True)
    src.write_bytes(PAYLOAD)
    ref = {"url": "https://example.invalid/net.bin", "sha256": PAYLOAD_SHA, "size": len(PAYLOAD)}
    fetch.check_fetched(src, ref, "fetch:m")  # intact: silent
    _flip_byte(src)
    bad = hashlib.sha256(src.read_bytes()).hexdigest()
    with pytest.raises(ZoomakeError) as err:
        fetch.check_fetched(src, ref, "fetch:m")
    assert _one_line(err) == (
        f"{src}: sha256 {bad} ({len(PAYLOAD)} bytes), the recipe says sha256 {PAYLOAD_SHA} "
        f"({len(PAYLOAD)} bytes): the file changed after fetch:m; removed it, "
        "the next doit fetches it again"
    )
    assert not src.exists()  # so doit reruns fetch:m (its target is missing)


def _grown(path: Path) -> None:
    path.write_bytes(PAYLOAD + b"!")


def _replaced_by_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _replaced_by_dangling_link(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent / "gone.bin")


def _replaced_by_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


# What the cache entry and the build's copy are found to be, after the fetch put them there.
DAMAGE = {
    "grown": (_grown, f"more than {len(PAYLOAD)} bytes", "removed it"),
    "fifo": (_replaced_by_fifo, "it is a FIFO (named pipe), not a regular file", "removed it"),
    "dangling-symlink": (
        _replaced_by_dangling_link, "it is a dangling symbolic link (to {dir}/gone.bin)",
        "removed it",
    ),
    # unlink() cannot remove a directory (not even as root): the line says so, nothing is lost.
    "directory": (
        _replaced_by_directory, "it is a directory, not a regular file",
        "could not remove it (Is a directory): remove it by hand",
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_cache_entry_fails_in_one_line_and_is_evicted(tmp_path, kind):
    """The cache entry re-hash (``_cached``) beyond a flipped byte: a file that grew, or one
    replaced by a FIFO (must not hang) or a dangling link; each is removed, then re-fetched."""
    make, found, done = DAMAGE[kind]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "net.bin").write_bytes(PAYLOAD)
    url, cache = "https://example.invalid/net.bin", tmp_path / "cache"
    args = (url, PAYLOAD_SHA, len(PAYLOAD))
    entry = fetch.fetch_file(*args, cache_dir=cache, mirrors=[mirror])
    entry.chmod(0o644)
    make(entry)
    with _within(5), pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(*args, cache_dir=cache, mirrors=[mirror], offline=True)
    assert _one_line(err) == (
        f"{entry}: corrupt cache entry for {url}: {found.format(dir=entry.parent)}, expected "
        f"sha256 {PAYLOAD_SHA} ({len(PAYLOAD)} bytes); {done}, the next build fetches the file "
        "again"
    )
    if kind == "directory":
        assert entry.is_dir()
        return
    assert not os.path.lexists(entry)
    assert fetch.fetch_file(*args, cache_dir=cache, mirrors=[mirror]).read_bytes() == PAYLOAD


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_check_fetched_fails_in_one_line_on_a_source_that_is_no_longer_the_file(tmp_path, kind):
    make, found, done = DAMAGE[kind]
    src = tmp_path / "build" / "m" / "source" / "net.bin"
    src.parent.mkdir(parents=True)
    src.write_bytes(PAYLOAD)
    ref = {"url": "https://example.invalid/net.bin", "sha256": PAYLOAD_SHA, "size": len(PAYLOAD)}
    make(src)
    with _within(5), pytest.raises(ZoomakeError) as err:
        fetch.check_fetched(src, ref, "fetch:m")
    assert _one_line(err) == (
        f"{src}: {found.format(dir=src.parent)}, the recipe says sha256 {PAYLOAD_SHA} "
        f"({len(PAYLOAD)} bytes): the file changed after fetch:m; {done}, the next doit "
        "fetches it again"
    )
    assert src.is_dir() if kind == "directory" else not os.path.lexists(src)


def test_check_fetched_names_a_missing_source_and_the_task_that_makes_it(tmp_path):
    src = tmp_path / "build" / "m" / "source" / "net.bin"
    ref = {"url": "https://example.invalid/net.bin", "sha256": PAYLOAD_SHA, "size": len(PAYLOAD)}
    with pytest.raises(ZoomakeError) as err:
        fetch.check_fetched(src, ref, "fetch:m")
    assert _one_line(err) == f"{src}: missing, the next doit runs fetch:m again"


@pytest.mark.parametrize("clone_ok", [True, False])
def test_materialize_uses_a_reflink_and_still_checks_it(tmp_path, monkeypatch, clone_ok):
    # This machine's ext4 cannot clone (FICLONE fails, and the copy path is what the other
    # tests use): emulate the ioctl to check what materialize does around a clone.
    import types

    calls = []

    def ioctl(fd, request, src_fd):
        calls.append(request)
        data = os.pread(src_fd, 1 << 20, 0)
        os.write(fd, data if clone_ok else data[:-1] + b"?")

    monkeypatch.setattr(fetch, "fcntl", types.SimpleNamespace(ioctl=ioctl))
    cached = tmp_path / "blob"
    cached.write_bytes(PAYLOAD)
    dest = tmp_path / "source" / "net.bin"
    if clone_ok:
        fetch.materialize(cached, dest, PAYLOAD_SHA)
        assert dest.read_bytes() == PAYLOAD
        assert not os.path.samefile(cached, dest)
        assert oct(dest.stat().st_mode & 0o777) == oct(0o444)
    else:
        with pytest.raises(ZoomakeError) as err:
            fetch.materialize(cached, dest, PAYLOAD_SHA)
        assert _one_line(err).startswith(f"{cached}: sha256 ")
        assert not dest.exists()
        assert os.listdir(dest.parent) == []  # no temporary left behind
    assert calls == [0x40049409]  # FICLONE


# -- the mirror says what it found ---------------------------------------------------------------
@pytest.mark.parametrize("offline", [True, False])
def test_mirror_file_with_the_wrong_hash_is_named(tmp_path, offline):
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    (mirror / "sub" / "net.bin").write_bytes(OTHER)
    url = _closed_port_url()  # online, the network would only add retries and a vague error
    start = time.monotonic()
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            url,
            PAYLOAD_SHA,
            len(PAYLOAD),
            cache_dir=tmp_path / "c",
            mirrors=[mirror],
            offline=offline,
            retries=4,
            backoff=1.0,
        )
    assert _one_line(err) == (
        f"{url}: found {mirror / 'sub' / 'net.bin'} in the mirror, sha256 {OTHER_SHA} "
        f"({len(OTHER)} bytes), the recipe says sha256 {PAYLOAD_SHA}"
    )
    assert time.monotonic() - start < 1.0  # no back-off: the mirror's answer is final


def test_mirror_file_of_another_size_is_named_offline_and_skipped_online(server, tmp_path):
    # A common name (deploy.prototxt) may belong to another model: online, download instead.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "net.bin").write_bytes(b"an unrelated file")
    url = server.base + "/models/net.bin"
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path / "c", mirrors=[mirror], offline=True
        )
    assert _one_line(err) == (
        f"offline: {url}: found {mirror / 'net.bin'} in the mirror, 17 bytes, "
        f"the recipe says {len(PAYLOAD)} bytes"
    )
    assert server.requests == []
    path = fetch.fetch_file(
        url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path / "c", mirrors=[mirror], **FAST
    )
    assert path.read_bytes() == PAYLOAD
    # When the download fails too, the error still says what the mirror held.
    down = _closed_port_url()
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            down, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path / "d", mirrors=[mirror], retries=0
        )
    assert _one_line(err).endswith(
        f"; found {mirror / 'net.bin'} in the mirror, 17 bytes, the recipe says {len(PAYLOAD)} bytes"
    )


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "gone.bin")


ODD_FILES = {
    "fifo": (_fifo, "is a FIFO (named pipe), not a regular file"),
    "directory": (_directory, "is a directory"),
    "dangling-symlink": (_dangling, "is a dangling symbolic link (to {dir}/gone.bin)"),
}


@pytest.mark.parametrize("kind", sorted(ODD_FILES))
@pytest.mark.parametrize("size", [0, len(PAYLOAD)])  # a 0-byte recipe once opened the FIFO
def test_odd_mirror_entries_give_one_line_never_a_hang(tmp_path, kind, size):
    make, phrase = ODD_FILES[kind]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make(mirror / "net.bin")
    url = "https://example.invalid/models/net.bin"
    with _within(5), pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            url, PAYLOAD_SHA, size, cache_dir=tmp_path / "c", mirrors=[mirror], offline=True
        )
    want = phrase.format(dir=mirror)
    assert _one_line(err) == f"{url}: found {mirror / 'net.bin'} in the mirror, but it {want}"


# -- hostile recipes: file names, local files --------------------------------------------------
HOSTILE_NAMES = ["..%2F..%2Fescaped.bin", "%2Ftmp%2Fescaped.bin", "a%5C..%5Cb.bin", "x%00y.bin",
                 "%2e%2e", "."]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_fetch_refuses_url_names_that_leave_the_source_directory(tmp_path, name):
    src_dir = tmp_path / "files" / "a" / "b"
    src_dir.mkdir(parents=True)
    url = f"{src_dir.as_uri()}/{name}"
    dest = tmp_path / "build" / "m" / "source"
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_to({"url": url, "sha256": PAYLOAD_SHA, "size": 4}, dest, mirrors=[])
    assert re.fullmatch(
        re.escape(f"{url}: expected a URL ending in a plain file name, but its file name ")
        + r".* (contains a path separator|contains a control character)|"
        + re.escape(f"{url}: expected a URL ending in a plain file name, but its file name is ")
        + r"'\.\.?'( once percent-decoded)?",
        _one_line(err),
    ), str(err.value)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written anywhere


def test_traversal_does_not_write_outside_the_source_directory(tmp_path):
    # Today's bug, end to end: the file exists where the decoded name points, the hash is
    # right, and build/m/source/../../escaped.bin would be written.
    (tmp_path / "files" / "a" / "b").mkdir(parents=True)
    (tmp_path / "files" / "escaped.bin").write_bytes(PAYLOAD)
    url = (tmp_path / "files" / "a" / "b").as_uri() + "/..%2F..%2Fescaped.bin"
    ref = {"url": url, "sha256": PAYLOAD_SHA, "size": len(PAYLOAD)}
    with pytest.raises(ZoomakeError, match="plain file name"):
        fetch.fetch_to(ref, tmp_path / "build" / "m" / "source", cache_dir=tmp_path / "c")
    assert not (tmp_path / "build").exists()


def test_file_url_to_dev_zero_stops_at_once(tmp_path):
    with _within(5), pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            "file:///dev/zero", PAYLOAD_SHA, 1000, cache_dir=tmp_path / "c", mirrors=[]
        )
    assert _one_line(err) == "file:///dev/zero: /dev/zero is a character device, not a regular file"
    assert _leftovers(tmp_path / "c") == []


def test_file_url_larger_than_the_recipe_says_is_not_read(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:  # sparse: 1 TiB that would take hours to read
        f.truncate(1 << 40)
    with _within(5), pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(big.as_uri(), PAYLOAD_SHA, 1000, cache_dir=tmp_path / "c", mirrors=[])
    assert _one_line(err) == (
        f"{big.as_uri()}: size mismatch: expected 1000 bytes, {big} has {1 << 40} bytes"
    )
    assert _leftovers(tmp_path / "c") == []


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_file_url_reads_stop_one_byte_past_the_recipes_size(tmp_path):
    # /proc files claim 0 bytes and yet have content: only the read limit can catch them.
    with _within(5), pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            "file:///proc/self/status", PAYLOAD_SHA, 0, cache_dir=tmp_path / "c", mirrors=[]
        )
    assert _one_line(err) == (
        f"file:///proc/self/status: size mismatch: expected sha256 {PAYLOAD_SHA} (0 bytes), "
        "got a different file (more than 0 bytes; its sha256 is not shown for a local file); "
        "download deleted"
    )


@pytest.mark.parametrize("kind", sorted(ODD_FILES))
def test_odd_local_files_give_one_line_never_a_hang(tmp_path, kind):
    make, phrase = ODD_FILES[kind]
    path = tmp_path / "net.bin"
    make(path)
    with _within(5), pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(path.as_uri(), PAYLOAD_SHA, 0, cache_dir=tmp_path / "c", mirrors=[])
    want = phrase.format(dir=tmp_path)
    if kind == "directory":
        want += ", not a regular file"
    assert _one_line(err) == f"{path.as_uri()}: {path} {want}"


def test_wrong_hash_of_a_local_file_does_not_print_its_digest(tmp_path):
    # file:// may name any file (a recipe in a pull request, built by CI): its digest in the
    # log would let the recipe's author check guesses of a secret's content.
    secret = tmp_path / "home" / "token.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"hunter2\n")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    url = secret.as_uri()
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(url, PAYLOAD_SHA, 8, cache_dir=tmp_path / "c", mirrors=[])
    assert _one_line(err) == (
        f"{url}: checksum mismatch: expected sha256 {PAYLOAD_SHA} (8 bytes), got a different "
        "file (8 bytes; its sha256 is not shown for a local file); download deleted"
    )
    assert digest not in str(err.value)


# -- hostile servers -------------------------------------------------------------------------------
def test_trickling_server_hits_the_total_deadline(server, tmp_path, monkeypatch):
    # 1 byte per 5 ms: no read ever times out, the whole file would take 10 s.
    data = bytes(range(200)) * 10
    server.files["/slow.bin"] = data
    server.trickle = 0.005
    monkeypatch.setenv("ZOOMAKE_FETCH_MIN_RATE", "4000")  # 2000 bytes -> 0.5 s ...
    monkeypatch.setenv("ZOOMAKE_FETCH_GRACE", "0.3")  # ... + 0.3 s
    url = server.base + "/slow.bin"
    start = time.monotonic()
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            url,
            hashlib.sha256(data).hexdigest(),
            len(data),
            cache_dir=tmp_path,
            mirrors=[],
            backoff=0.001,
            progress=False,
        )
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, elapsed
    assert re.fullmatch(
        re.escape(url) + r": too slow: \d+ of 2000 bytes after 0\.\d s, the deadline is 0\.8 s "
        r"\(ZOOMAKE_FETCH_GRACE=0\.3 s \+ the size at ZOOMAKE_FETCH_MIN_RATE=4000 bytes/s\); "
        r"the partial download is kept",
        _one_line(err),
    ), str(err.value)


def test_retries_stop_at_the_deadline_instead_of_sleeping_past_it(server, tmp_path):
    server.fail_first = 100
    url = server.base + "/models/net.bin"
    start = time.monotonic()
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            url,
            PAYLOAD_SHA,
            len(PAYLOAD),
            cache_dir=tmp_path,
            mirrors=[],
            retries=10,
            backoff=5.0,  # the first pause alone would pass the deadline
            min_rate=1e9,
            grace=0.5,
            progress=False,
        )
    assert time.monotonic() - start < 2.0
    assert re.fullmatch(
        re.escape(url) + r": too slow: 0 of 204804 bytes after 0\.\d s and 1 attempt "
        r"\(the last: HTTP 503 try later\), the deadline is 0\.5 s .*; the partial download is kept",
        _one_line(err),
    ), str(err.value)
    assert len(server.requests) == 1


def test_deadline_settings_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOMAKE_FETCH_MIN_RATE", "0")
    with pytest.raises(ZoomakeError, match=r"^ZOOMAKE_FETCH_MIN_RATE: expected a number above 0"):
        fetch.fetch_file(_closed_port_url(), PAYLOAD_SHA, 1, cache_dir=tmp_path, mirrors=[])


def test_redirect_loop_is_one_line(server, tmp_path):
    server.redirects = {"/loop/a.bin": "/loop/b.bin", "/loop/b.bin": "/loop/a.bin"}
    url = server.base + "/loop/a.bin"
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], **FAST)
    assert re.fullmatch(
        re.escape(f"{url}: redirect loop or more than 10 redirects (the last one: HTTP 302 from ")
        + re.escape(server.base)
        + r"/loop/[ab]\.bin\)",
        _one_line(err),
    ), str(err.value)


def test_redirect_to_another_scheme_is_refused(server, tmp_path):
    server.redirects = {"/models/net.bin": "ftp://127.0.0.1/net.bin"}
    url = server.base + "/models/net.bin"
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], **FAST)
    assert _one_line(err) == (
        f"{url}: HTTP 302 redirects to ftp://127.0.0.1/net.bin, which is not an http or https URL"
    )
    assert len(server.requests) == 1


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_recipe_check_refuses_url_names_that_leave_the_source_directory(tmp_path, name):
    from pipelines.recipes import load as recipes
    from tests.test_recipes import VALID

    url = f"https://example.org/m/{name}"
    path = tmp_path / "model-x.yaml"
    path.write_text(VALID.replace("https://example.org/m/net.caffemodel", url))
    errors = recipes.validate_recipe_file(path)
    assert len(errors) == 1, errors  # the recipe is otherwise valid: only the name is refused
    assert errors[0].startswith(
        f"{path}#/source/caffemodel/url: expected a URL ending in a plain file name, got '{url}': "
        "its file name "
    ), errors
