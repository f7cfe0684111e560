"""pipelines.fetch.cache against a real HTTP server on 127.0.0.1 (started here, ephemeral port)."""

from __future__ import annotations

import hashlib
import http.server
import multiprocessing
import os
import re
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipelines.errors import ZoomakeError
from pipelines.fetch import cache as fetch

PAYLOAD = bytes(range(256)) * 800 + b"tail"  # 204804 bytes: several read chunks
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"backoff": 0.001, "timeout": 5.0, "progress": False}


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if self.path in srv.redirects:
            self.send_response(302)
            self.send_header("Location", srv.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if srv.fail_first > 0:
            srv.fail_first -= 1
            self.send_error(503, "try later")
            return
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "no such file")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and srv.honour_range:
            start = int(match[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drop_after is not None:
            # Promise the whole body, send part of it, hang up: a connection lost mid-body.
            self.wfile.write(body[: srv.drop_after])
            srv.drop_after = None
            self.close_connection = True
            return
        step = 1 if srv.trickle else 65536
        for i in range(0, len(body), step):
            try:
                self.wfile.write(body[i : i + step])
            except (BrokenPipeError, ConnectionResetError):  # the client gave up on us
                return
            if srv.delay or srv.trickle:
                time.sleep(srv.delay or srv.trickle)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files = {"/models/net.bin": PAYLOAD}
    srv.requests = []
    srv.fail_first = 0
    srv.honour_range = True
    srv.drop_after = None
    srv.delay = 0.0
    srv.trickle = 0.0  # seconds between single bytes: a server that never trips a timeout
    srv.redirects = {}
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    # CI sets ZOOMAKE_MIRROR; these tests choose mirrors and offline mode explicitly.
    for name in ("ZOOMAKE_MIRROR", "ZOOMAKE_OFFLINE", "ZOOMAKE_CACHE", "CI"):
        monkeypatch.delenv(name, raising=False)


def _leftovers(cache: Path) -> list[str]:
    tmp = cache / "tmp"
    return (
        sorted(p.name for p in tmp.iterdir() if not p.name.endswith(".lock"))
        if tmp.exists()
        else []
    )


def test_download_into_content_addressed_cache(server, tmp_path):
    url = server.base + "/models/net.bin"
    path = fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], **FAST)
    assert path == tmp_path / "sha256" / PAYLOAD_SHA[:2] / PAYLOAD_SHA
    assert path.read_bytes() == PAYLOAD
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert _leftovers(tmp_path) == []
    # A second fetch is served by the cache: no request at all.
    again = fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], **FAST)
    assert again == path
    assert len(server.requests) == 1


def test_404_fails_at_once_naming_the_url(server, tmp_path):
    url = server.base + "/models/missing.bin"
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], retries=3, **FAST
        )
    assert str(err.value) == f"{url}: HTTP 404 no such file"
    assert len(server.requests) == 1  # a 404 is not retried
    assert _leftovers(tmp_path) == []


def test_server_errors_are_retried_with_backoff(server, tmp_path):
    server.fail_first = 2
    url = server.base + "/models/net.bin"
    path = fetch.fetch_file(
        url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], retries=2, **FAST
    )
    assert path.read_bytes() == PAYLOAD
    assert len(server.requests) == 3


def test_gives_up_after_the_retries(server, tmp_path):
    server.fail_first = 10
    url = server.base + "/models/net.bin"
    with pytest.raises(ZoomakeError, match=r"download failed after 3 attempts: HTTP 503"):
        fetch.fetch_file(
            url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], retries=2, **FAST
        )
    assert len(server.requests) == 3


def test_connection_refused_names_the_url(tmp_path):
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    port = srv.server_address[1]
    srv.server_close()  # nothing listens on this port any more
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(ZoomakeError, match=rf"^{re.escape(url)}: download failed after 2 attempts"):
        fetch.fetch_file(
            url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], retries=1, **FAST
        )


def test_dropped_connection_resumes_with_range(server, tmp_path):
    server.drop_after = 70_000
    url = server.base + "/models/net.bin"
    path = fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], **FAST)
    assert path.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None, "bytes=70000-"]
    assert _leftovers(tmp_path) == []


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.drop_after = 70_000
    server.honour_range = False
    url = server.base + "/models/net.bin"
    path = fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], **FAST)
    assert path.read_bytes() == PAYLOAD  # not the first 70000 bytes twice
    assert [r["range"] for r in server.requests] == [None, "bytes=70000-"]


def test_range_not_satisfiable_restarts_from_zero(server, tmp_path):
    # A stale partial download longer than the server's file: 416, then a fresh request.
    url = server.base + "/models/net.bin"
    declared = len(PAYLOAD) + 100
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / f"{PAYLOAD_SHA}.part").write_bytes(b"x" * (len(PAYLOAD) + 50))
    with pytest.raises(ZoomakeError, match=r"size mismatch: .*, got sha256 " + PAYLOAD_SHA):
        fetch.fetch_file(url, PAYLOAD_SHA, declared, cache_dir=tmp_path, mirrors=[], **FAST)
    assert [r["range"] for r in server.requests] == [f"bytes={len(PAYLOAD) + 50}-", None]
    assert _leftovers(tmp_path) == []


def test_corrupt_partial_download_is_caught_and_discarded(server, tmp_path):
    url = server.base + "/models/net.bin"
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / f"{PAYLOAD_SHA}.part").write_bytes(b"garbage")
    with pytest.raises(ZoomakeError, match="checksum mismatch"):
        fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], **FAST)
    assert _leftovers(tmp_path) == []
    path = fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], **FAST)
    assert path.read_bytes() == PAYLOAD


def test_wrong_checksum_deletes_and_prints_both_hashes(server, tmp_path):
    url = server.base + "/models/net.bin"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(url, wrong, len(PAYLOAD), cache_dir=tmp_path, mirrors=[], **FAST)
    assert str(err.value) == (
        f"{url}: checksum mismatch: expected sha256 {wrong} ({len(PAYLOAD)} bytes), "
        f"got sha256 {PAYLOAD_SHA} ({len(PAYLOAD)} bytes); download deleted"
    )
    assert not fetch.cache_path(tmp_path, wrong).exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("declared", [len(PAYLOAD) + 10, len(PAYLOAD) - 10])
def test_wrong_size_deletes_and_prints_both_sizes(server, tmp_path, declared):
    url = server.base + "/models/net.bin"
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(
            url, PAYLOAD_SHA, declared, cache_dir=tmp_path, mirrors=[], retries=0, **FAST
        )
    assert str(err.value) == (
        f"{url}: size mismatch: expected sha256 {PAYLOAD_SHA} ({declared} bytes), "
        f"got sha256 {PAYLOAD_SHA} ({len(PAYLOAD)} bytes); download deleted"
    )
    assert not fetch.cache_path(tmp_path, PAYLOAD_SHA).exists()
    assert _leftovers(tmp_path) == []


def test_mirror_is_searched_recursively_first(server, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "a").mkdir(parents=True)
    (mirror / "b" / "deep").mkdir(parents=True)
    (mirror / "a" / "net.bin").write_bytes(b"same name, wrong size")
    (mirror / "b" / "net.bin").write_bytes(PAYLOAD[:-1] + b"X")  # right size, wrong content
    (mirror / "b" / "deep" / "net.bin").write_bytes(PAYLOAD)
    url = server.base + "/models/net.bin"
    path = fetch.fetch_file(
        url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path / "c", mirrors=[mirror], **FAST
    )
    assert path.read_bytes() == PAYLOAD
    assert server.requests == []


def test_mirror_from_environment(server, tmp_path, monkeypatch):
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    full.mkdir()
    (full / "net.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("ZOOMAKE_MIRROR", f"{empty}{os.pathsep}{full}")
    url = server.base + "/models/net.bin"
    path = fetch.fetch_file(
        url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path / "c", offline=True, **FAST
    )
    assert path.read_bytes() == PAYLOAD
    assert server.requests == []


def test_missing_mirror_directory_is_an_error(tmp_path):
    with pytest.raises(ZoomakeError, match=r"^ZOOMAKE_MIRROR: .*nowhere is not a directory$"):
        fetch.fetch_file(
            "https://example.org/x.bin",
            PAYLOAD_SHA,
            1,
            cache_dir=tmp_path,
            mirrors=[tmp_path / "nowhere"],
        )


def test_offline_miss_says_which_file(server, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("ZOOMAKE_OFFLINE", "1")
    monkeypatch.setenv("ZOOMAKE_MIRROR", str(mirror))
    url = server.base + "/models/net.bin"
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path / "c", **FAST)
    assert str(err.value) == (
        f"offline: {url} (net.bin, sha256 {PAYLOAD_SHA}) is not in the cache or in ZOOMAKE_MIRROR={mirror}"
    )
    assert server.requests == []


def test_file_urls_work_offline(tmp_path):
    src = tmp_path / "dir with space" / "weights.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    url = src.as_uri()
    path = fetch.fetch_file(
        url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path / "c", mirrors=[], offline=True
    )
    assert path.read_bytes() == PAYLOAD
    missing = (tmp_path / "nope.bin").as_uri()
    with pytest.raises(ZoomakeError, match=rf"^{re.escape(missing)}: .*nope.bin does not exist$"):
        fetch.fetch_file(missing, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path / "c2", mirrors=[])


def _fetch_in_child(args) -> str:
    url, cache = args
    return str(
        fetch.fetch_file(url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=cache, mirrors=[], **FAST)
    )


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_concurrent_fetches_share_one_cache(server, tmp_path, workers):
    server.delay = 0.02  # slow enough that both fetches overlap
    url = server.base + "/models/net.bin"
    jobs = [(url, tmp_path)] * 2
    if workers == "threads":
        with ThreadPoolExecutor(2) as pool:
            paths = list(pool.map(_fetch_in_child, jobs))
    else:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            paths = pool.map(_fetch_in_child, jobs)
    assert paths[0] == paths[1]
    assert Path(paths[0]).read_bytes() == PAYLOAD
    assert len(server.requests) == 1  # the second build waited for the first one's download
    assert _leftovers(tmp_path) == []


def test_materialize_places_a_private_read_only_copy_atomically(tmp_path):
    cached = tmp_path / "cache" / "blob"
    cached.parent.mkdir()
    cached.write_bytes(PAYLOAD)
    cached.chmod(0o444)
    dest = tmp_path / "build" / "m" / "source" / "net.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"an old, different file")
    assert fetch.materialize(cached, dest, PAYLOAD_SHA) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    # Not a hard link: writing the build's file (as root may, read-only or not) must leave
    # the cache entry alone, or every later build would use the damaged weights.
    assert not os.path.samefile(cached, dest)
    dest.chmod(0o644)
    with open(dest, "r+b") as f:
        f.write(b"X")
    assert cached.read_bytes() == PAYLOAD
    fetch.materialize(cached, dest, PAYLOAD_SHA)  # repairs it
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["net.bin"]


def test_progress_bar_only_when_asked(server, tmp_path, capsys):
    url = server.base + "/models/net.bin"
    fetch.fetch_file(
        url, PAYLOAD_SHA, len(PAYLOAD), cache_dir=tmp_path / "a", mirrors=[], backoff=0.001
    )
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest
    fetch.fetch_file(
        url,
        PAYLOAD_SHA,
        len(PAYLOAD),
        cache_dir=tmp_path / "b",
        mirrors=[],
        backoff=0.001,
        progress=True,
    )
    err = capsys.readouterr().err
    assert "net.bin" in err and "100%" in err and err.endswith("\n")


def test_default_zoo_is_fetchable_offline_from_the_shared_mirror(repo_root, models_dir, tmp_path):
    # What CI does: ZOOMAKE_MIRROR=../shared/models, no network.
    from pipelines.recipes import cache as recipe_cache
    from pipelines.recipes import load as recipes

    zoo = recipe_cache.load_zoo(repo_root / "recipes", tmp_path / "recipe-cache")
    fetched = 0
    for recipe in zoo.values():
        for ref in recipes.recipe_files(recipe).values():
            path = fetch.fetch_file(
                ref["url"],
                ref["sha256"],
                ref["size"],
                cache_dir=tmp_path,
                mirrors=[models_dir],
                offline=True,
            )
            assert hashlib.sha256(path.read_bytes()).hexdigest() == ref["sha256"]
            fetched += 1
    assert fetched == sum(len(recipes.recipe_files(r)) for r in zoo.values()) >= 13
