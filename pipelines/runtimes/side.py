"""Side runtimes: a source framework in a Python environment of its own, run as a subprocess.

pycaffe is built against NumPy 1.x and protobuf 4.21, MXNet 1.9 wants NumPy 1.23: neither can
share zoomake's environment. Each framework has a runner script in ``side_runners/`` (package
data, run by the framework's own Python) that speaks one protocol (``side_runners/sideproto``):
model files + named inputs in, named outputs (or every intermediate blob) out, tensors as
``.npz`` payloads over the runner's stdin/stdout. One runner process serves a whole build or test
session (models are loaded once, run per sample); it dies with its parent, every call has a
deadline, and a crash or a missing environment is one line naming what to do.

Where a runtime is found, in order: ``ZOOMAKE_<FW>_PYTHON`` (+ ``ZOOMAKE_<FW>_PYTHONPATH``,
``os.pathsep``-separated), else ``<zoomake cache>/runtimes/<fw>/runtime.json`` written by
``zoomake setup-runtime <fw>`` (``pipelines.runtimes.setup_runtime``).

API (stable; tests use it)::

    available(framework) -> bool
    process(framework) -> SideProcess        # shared per framework and OS process
    model = SideModel(framework, {"prototxt": p, "caffemodel": w})
    model.inputs, model.outputs, model.blobs  # names (inputs: [(name, shape)])
    model.run(feeds, outputs=None | [names] | "all") -> {name: array}
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import selectors
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.errors import ZoomakeError

RUNNERS = Path(__file__).resolve().parent / "side_runners"
SCRIPTS = {"caffe": "run_caffe.py", "mxnet": "run_mxnet.py"}
START_TIMEOUT_S = 120.0  # importing pycaffe / MXNet on a loaded 2-core machine
_LEN = struct.Struct("<Q")


def call_timeout() -> float:
    """Deadline of one load/run call (``ZOOMAKE_SIDE_TIMEOUT`` seconds, default 600)."""
    try:
        return float(os.environ.get("ZOOMAKE_SIDE_TIMEOUT") or 600)
    except ValueError:
        raise ZoomakeError(
            f"ZOOMAKE_SIDE_TIMEOUT: expected seconds, got '{os.environ['ZOOMAKE_SIDE_TIMEOUT']}'"
        ) from None


# Side runtimes a build sets up by itself when a task needs one (``pipelines.build.tasks``,
# task_runtime): those that install from the package registry alone. Real Caffe needs prebuilt
# files and Debian libraries, so it is the user's step.
AUTO_SETUP = ("mxnet",)
AUTO_ENV = "ZOOMAKE_AUTO_RUNTIME"  # "0": never set one up during a build


def setup_command(framework: str) -> str:
    return f"zoomake setup-runtime {framework}"


@dataclass(frozen=True)
class RuntimeEnv:
    framework: str
    python: str
    pythonpath: list[str] = field(default_factory=list)
    origin: str = ""  # where it was found: an environment variable or the runtime.json path
    build: str = ""  # what the environment says about the framework build (e.g. Caffe commit)


def runtime_dir(framework: str) -> Path:
    from pipelines.fetch.cache import default_cache_dir

    return default_cache_dir() / "runtimes" / framework


def locate(framework: str) -> RuntimeEnv | None:
    """The framework's environment, or None when it is not set up."""
    var = f"ZOOMAKE_{framework.upper()}_PYTHON"
    if os.environ.get(var):
        path = os.environ.get(f"ZOOMAKE_{framework.upper()}_PYTHONPATH", "")
        parts = [p for p in path.split(os.pathsep) if p]
        return RuntimeEnv(framework, os.environ[var], parts, var, build_note(framework, parts))
    record = runtime_dir(framework) / "runtime.json"
    if not record.is_file():
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        return RuntimeEnv(
            framework, data["python"], list(data.get("pythonpath") or []), str(record),
            data.get("build", ""),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ZoomakeError(
            f"{record}: unreadable runtime record ({exc}); run `{setup_command(framework)}` again"
        ) from None


def available(framework: str) -> bool:
    return locate(framework) is not None


def reference_config(recipe: dict) -> dict:
    """What a Caffe source's measure depends on about its reference runtime (cheap, for doit's
    config_changed: no process is started). ``verify.reference: auto`` picks real Caffe once
    it is set up, which must rerun measure."""
    if (recipe.get("source") or {}).get("framework") != "caffe":
        return {}
    choice = (recipe.get("verify") or {}).get("reference", "auto")
    if choice == "opencv":
        return {"reference": "opencv"}
    try:
        env = locate("caffe")
    except ZoomakeError as exc:
        return {"reference": "caffe", "error": str(exc)}
    if env is None:  # auto falls back to OpenCV; a requested caffe fails measure
        return {"reference": "opencv" if choice == "auto" else "caffe (not set up)"}
    return {"reference": "caffe", "python": env.python, "pythonpath": env.pythonpath,
            "build": env.build}  # fmt: skip


def build_note(framework: str, pythonpath: list[str]) -> str:
    """The build a prebuilt framework's README states (Caffe: fork version and BVLC commit)."""
    if framework != "caffe":
        return ""
    for entry in pythonpath:
        readme = Path(entry).parent / "README.md"
        if readme.is_file():
            text = readme.read_text(encoding="utf-8", errors="replace")
            commit = re.search(r"BVLC caffe master ([0-9a-f]{7,40})", text)
            fork = re.search(r"`([A-Za-z][\w-]*caffe)` ([0-9][\w.]*)", text)
            parts = [f"{fork.group(1)} {fork.group(2)}" if fork else "",
                     f"BVLC commit {commit.group(1)}" if commit else ""]  # fmt: skip
            return ", ".join(p for p in parts if p)
    return ""


def _crash_reason(log: str) -> str:
    """The line of a runner's stderr that says why it died (glog FATAL, else the last line)."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        m = re.match(r"F\d{4,8} [\d:.]+\s+\d+ [^\]]*\] (.*)", lines[i])
        if m:
            # A prototxt Caffe cannot parse: protobuf's own line says where and why.
            parse = [ln for ln in lines[:i] if ln.startswith("[libprotobuf ERROR")]
            why = parse[-1].split("] ", 1)[-1] if parse else ""
            return _clip(m.group(1) + (f" ({why})" if why else ""))
    noise = ("*** Check failure stack trace", "@ ", "Traceback", "File ")
    for line in reversed(lines):
        if not line.startswith(noise):
            return _clip(line)
    return "no message"


def _clip(line: str, limit: int = 300) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


# glibc's M_MMAP_THRESHOLD (its maximum on 64-bit, 32 MiB; setting it also stops the dynamic
# threshold) and M_TRIM_THRESHOLD (free memory kept at the heap's top before it is trimmed).
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


class SideProcess:
    """One runner process: ``request(header, arrays)`` sends a frame and waits for the answer."""

    def __init__(self, env: RuntimeEnv, wait: bool = True):
        """Start the runner; with ``wait`` also wait for its hello (the framework imported).
        Without it the first request waits: the caller does its own work meanwhile."""
        self.env = env
        self.info: dict = {}
        self._greeted = False
        self.framework = env.framework
        self.pid = os.getpid()
        if not Path(env.python).is_file():
            raise ZoomakeError(
                f"{env.framework} runtime: {env.python} (from {env.origin}) does not exist; "
                f"run `{setup_command(env.framework)}`"
            )
        child_env = dict(os.environ)
        child_env.pop("PYTHONHOME", None)
        child_env["PYTHONPATH"] = os.pathsep.join(env.pythonpath)
        child_env["PYTHONNOUSERSITE"] = "1"
        child_env.setdefault("GLOG_minloglevel", "2")
        child_env["OPENBLAS_NUM_THREADS"] = child_env.get("OPENBLAS_NUM_THREADS", "1")
        # glibc malloc keeps freed memory for the next net instead of giving it back: Caffe
        # allocates a net's blobs on its first forward, each above malloc's default mmap
        # threshold, so every newly loaded net paid fresh zeroed pages (page faults) once, its
        # first forward 2-3x its later ones (a zoo loads one net per model into this process).
        # Chunks above 32 MiB (a big model's weights) are still mapped and unmapped as before.
        # bench/bench_side_runtime.py measures it; a value the user set is kept.
        for name, value in MALLOC_TUNING.items():
            child_env.setdefault(name, value)
        child_env["ZOOMAKE_SIDE_PARENT"] = str(os.getpid())
        # A file, not a pipe: a chatty runner must never block on a full stderr pipe.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        try:
            self.proc = subprocess.Popen(
                [env.python, "-u", str(RUNNERS / SCRIPTS[env.framework])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                env=child_env, bufsize=0, cwd=str(RUNNERS),
            )  # fmt: skip
        except OSError as exc:
            raise ZoomakeError(
                f"{env.framework} runtime: cannot start {env.python}: {exc}"
            ) from None
        for pipe in (self.proc.stdin, self.proc.stdout):
            os.set_blocking(pipe.fileno(), False)
            # A 1 MiB pipe moves an image tensor in one go instead of 16 wake-ups of 64 KiB
            # (Linux F_SETPIPE_SZ; the default size works too, only slower).
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        if wait:
            self.ready()

    def ready(self) -> SideProcess:
        """Wait for the runner's hello (once): it has imported its framework."""
        if not self._greeted:
            self._greeted = True
            reply, _ = self.request({"op": "hello"}, timeout=START_TIMEOUT_S, what="starting")
            self.info = {k: v for k, v in reply.items() if k not in ("ok", "seconds", "arrays")}
        return self

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _fail(self, what: str, why: str) -> ZoomakeError:
        self.close(kill=True)
        self._log.seek(0)
        reason = _crash_reason(self._log.read()[-20000:].decode("utf-8", "replace"))
        return ZoomakeError(f"{self.framework} runtime {why} {what}: {reason}")

    def request(self, header: dict, arrays=None, timeout: float | None = None, what: str = ""):
        from pipelines.runtimes.side_runners.sideproto import decode_arrays, encode

        if not self._greeted and header.get("op") != "hello":
            self.ready()
        what = what or header.get("op", "")
        if not self.alive:
            raise self._fail(what, f"had exited (code {self.proc.returncode}) before")
        data = memoryview(encode(header, arrays))
        deadline = time.monotonic() + (timeout if timeout is not None else call_timeout())
        out_fd, in_fd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        buf, need = bytearray(), None
        with selectors.DefaultSelector() as sel:
            sel.register(in_fd, selectors.EVENT_READ)
            sel.register(out_fd, selectors.EVENT_WRITE)
            while need is None or len(buf) < need:
                left = deadline - time.monotonic()
                if left <= 0:
                    limit = timeout if timeout is not None else call_timeout()
                    self.close(kill=True)
                    raise ZoomakeError(
                        f"{self.framework} runtime did not answer within {limit:g} s {what} "
                        "(killed; raise ZOOMAKE_SIDE_TIMEOUT for a bigger model)"
                    )
                for key, _ in sel.select(left):
                    if key.fd == out_fd:
                        try:
                            data = data[os.write(out_fd, data[: 1 << 20]) :]
                        except BrokenPipeError:
                            data = data[:0]
                        if not data:
                            sel.unregister(out_fd)
                        continue
                    try:
                        chunk = os.read(in_fd, 1 << 20)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        self.proc.wait(timeout=10)
                        raise self._fail(what, f"crashed (exit code {self.proc.returncode})")
                    buf += chunk
                    need = _frame_size(buf)
        hlen = _LEN.unpack_from(buf)[0]
        reply = json.loads(bytes(buf[8 : 8 + hlen]).decode("utf-8"))
        if not reply.get("ok"):
            raise ZoomakeError(f"{self.framework} runtime failed {what}: {reply.get('error')}")
        return reply, decode_arrays(reply, bytes(buf[16 + hlen :]))

    def close(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if not kill:
                with contextlib.suppress(ZoomakeError):
                    self.request({"op": "exit"}, timeout=5)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()


def _frame_size(buf: bytearray) -> int | None:
    if len(buf) < 8:
        return None
    hlen = _LEN.unpack_from(buf)[0]
    if len(buf) < 16 + hlen:
        return None
    return 16 + hlen + _LEN.unpack_from(buf, 8 + hlen)[0]


_PROCESSES: dict[tuple[str, int], SideProcess] = {}


def process(framework: str, wait: bool = True) -> SideProcess:
    """The runner process for ``framework``, started on first use and kept for the session;
    ``wait=False`` returns a starting one (its first request waits for it, ``SideProcess``).

    One per thread (``doit -P thread``; a pipe must have one owner, and the runner's death
    signal follows the thread that started it) and a new one after a fork or a crash."""
    key = (framework, threading.get_ident())
    env = locate(framework)
    if env is None:
        raise ZoomakeError(
            f"the {framework} runtime is not set up: run `{setup_command(framework)}`"
        )
    proc = _PROCESSES.get(key)
    if proc is not None and proc.pid == os.getpid() and proc.alive and proc.env == env:
        return proc.ready() if wait else proc
    if proc is not None and proc.pid == os.getpid():
        proc.close()  # set up anew since it started: the old environment goes
    _PROCESSES[key] = proc = SideProcess(env, wait)
    return proc


@atexit.register
def _close_all() -> None:
    for proc in _PROCESSES.values():
        if proc.pid == os.getpid():
            proc.close()


class SideModel:
    """A model loaded into a side runtime; freed in the runner when this object goes away."""

    def __init__(self, framework: str, files: dict[str, str | os.PathLike], **options):
        self.proc = process(framework)
        what = "loading " + ", ".join(str(p) for p in files.values())
        header = {"op": "load", "files": {k: str(v) for k, v in files.items()}, **options}
        reply, _ = self.proc.request(header, what=what)
        self.key = reply["model"]
        self.inputs = [(i["name"], i["shape"]) for i in reply["inputs"]]
        self.outputs = list(reply["outputs"])
        self.blobs = list(reply["blobs"])
        self.last_seconds = 0.0  # the framework's own time in the last run (protocol overhead)
        fin = weakref.finalize(self, _free, self.proc, self.key)
        fin.atexit = False

    def run(self, feeds: dict, outputs=None) -> dict:
        import numpy as np

        arrays = {k: np.asarray(v, dtype=np.float32) for k, v in feeds.items()}
        header = {"op": "run", "model": self.key, "outputs": outputs}
        reply, got = self.proc.request(header, arrays, what="running the model")
        self.last_seconds = float(reply.get("seconds", 0.0))
        return got


def _free(proc: SideProcess, key: str) -> None:
    if proc.alive and proc.pid == os.getpid():
        with contextlib.suppress(ZoomakeError):
            proc.request({"op": "free", "model": key}, timeout=30)
