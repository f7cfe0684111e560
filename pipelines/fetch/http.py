"""Resumable HTTP(S) download with retries, for pipelines.fetch.cache (urllib only).

One attempt appends to a partial file, asking for the rest with ``Range: bytes=N-`` when
the file already holds N bytes. 206 with the matching Content-Range continues it, 200 means
the server ignored Range (start over), 416 means the partial file does not fit (delete it,
retry from zero). Connection errors, short bodies, 408/429 and 5xx are retried with
exponential back-off; any other HTTP error (404, 403, ...) fails at once.

The whole download, retries and back-off included, has a deadline (``grace`` seconds plus the
size at ``min_rate`` bytes/s): a server that trickles a byte at a time never trips a socket
timeout, so reads return whatever arrived (``read1``) and the clock is checked between them.
Redirects stay on http/https, at most ``MAX_REDIRECTS``; a loop is one line, not urllib's
three-line message.
"""

from __future__ import annotations

import http.client
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pipelines.errors import ZoomakeError

CHUNK = 1 << 16
MAX_REDIRECTS = 10
# A download larger than expected is read on (to print its hash) only up to this excess.
_MAX_EXCESS = 64 << 20
_USER_AGENT = "zoomake-fetch/1 (+urllib)"


class _Retryable(Exception):
    """A transient failure (connection error, 5xx, short body): back off and resume."""


class _TooSlow(Exception):
    """The download's deadline passed."""


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme
        if scheme not in ("http", "https"):  # urllib would follow to ftp://
            raise ZoomakeError(
                f"{req.full_url}: HTTP {code} redirects to {_printable(newurl)}, "
                "which is not an http or https URL"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_Redirects)


def _printable(text) -> str:
    """A server-chosen string (reason phrase, Location) made safe for a one-line error."""
    return "".join(c if c.isprintable() else "?" for c in " ".join(str(text).split()))


class _Progress:
    """A one-line progress bar on stderr; silent unless enabled."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self.name, self.total, self.enabled, self.last = name, total, enabled, 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.1):
            return
        self.last = now
        pct = 100 * done // self.total if self.total else 100
        bar = "#" * (pct // 5)
        sys.stderr.write(
            f"\r{self.name[:40]:40} [{bar:20}] {pct:3d}% {done / 1e6:8.1f}/{self.total / 1e6:.1f} MB"
        )
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _transfer(
    url: str, part: Path, size: int, timeout: float, deadline: float, progress: _Progress
) -> None:
    """One HTTP attempt, appending to ``part`` (resumed with Range when it has data)."""
    offset = part.stat().st_size if part.exists() else 0
    if offset >= size:  # complete already (or too long: let the check report it)
        return
    if time.monotonic() > deadline:
        raise _TooSlow(offset)
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    # No single connect or read may outlast the deadline by more than the socket timeout.
    timeout = max(0.01, min(timeout, deadline - time.monotonic()))
    try:
        response = _OPENER.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code in (301, 302, 303, 307, 308):
            if str(exc.msg).startswith(urllib.request.HTTPRedirectHandler.inf_msg):
                raise ZoomakeError(
                    f"{url}: redirect loop or more than {MAX_REDIRECTS} redirects "
                    f"(the last one: HTTP {exc.code} from {_printable(exc.filename)})"
                ) from None
            raise ZoomakeError(f"{url}: HTTP {exc.code} redirect without a Location") from None
        if exc.code == 416:  # our partial file does not fit the server's: start over
            part.unlink(missing_ok=True)
            raise _Retryable("HTTP 416 Range Not Satisfiable for the partial download") from None
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Retryable(f"HTTP {exc.code} {_printable(exc.reason)}") from None
        raise ZoomakeError(f"{url}: HTTP {exc.code} {_printable(exc.reason)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _Retryable(_printable(getattr(exc, "reason", exc))) from None
    with response:
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                part.unlink(missing_ok=True)
                raise _Retryable(
                    f"server answered Range bytes={offset}- with {_printable(content_range)!r}"
                )
        elif offset:  # 200: the server ignored Range and sends the whole file
            offset = 0
        length = response.headers.get("Content-Length")
        expected_end = offset + int(length) if length and length.isdigit() else None
        done = offset
        with open(part, "ab" if offset else "wb") as f:
            while done <= size + _MAX_EXCESS:
                if time.monotonic() > deadline:
                    raise _TooSlow(done)
                try:
                    block = response.read1(CHUNK)
                except (http.client.HTTPException, OSError) as exc:
                    raise _Retryable(
                        f"connection lost after {done} bytes ({exc.__class__.__name__})"
                    ) from None
                if not block:
                    break
                f.write(block)
                done += len(block)
                progress.update(done)
    if expected_end is not None and done < expected_end:
        raise _Retryable(f"connection closed after {done} of {expected_end} bytes")
    progress.update(done, final=True)


def download(
    url: str,
    part: Path,
    size: int,
    *,
    retries: int,
    backoff: float,
    timeout: float,
    min_rate: float,
    grace: float,
    progress: bool,
) -> None:
    """Download ``url`` into ``part`` (resuming what it holds); ZoomakeError when giving up.

    ``size`` is the expected size: the transfer stops soon after a server sends much more,
    and gives up ``grace + size / min_rate`` seconds after it started. The caller checks size
    and hash of the result.
    """
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    bar = _Progress(name, size, progress)
    start = time.monotonic()
    allowed = grace + size / min_rate
    deadline = start + allowed
    attempt = 0

    def too_slow(done: int, why: str = "") -> ZoomakeError:
        return ZoomakeError(
            f"{url}: too slow: {done} of {size} bytes after {time.monotonic() - start:.1f} s{why}, "
            f"the deadline is {allowed:.1f} s (ZOOMAKE_FETCH_GRACE={grace:g} s + the size at "
            f"ZOOMAKE_FETCH_MIN_RATE={min_rate:g} bytes/s); the partial download is kept"
        )

    while True:
        try:
            _transfer(url, part, size, timeout, deadline, bar)
            return
        except _TooSlow as exc:
            raise too_slow(exc.args[0]) from None
        except _Retryable as exc:
            attempt += 1
            if attempt > retries:
                raise ZoomakeError(
                    f"{url}: download failed after {attempt} attempts: {exc}"
                ) from None
            pause = backoff * 2 ** (attempt - 1)
            if time.monotonic() + pause > deadline:
                done = part.stat().st_size if part.exists() else 0
                tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                raise too_slow(done, f" and {tries} (the last: {exc})") from None
            time.sleep(pause)
