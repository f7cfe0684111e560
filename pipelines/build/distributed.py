"""Zoo builds on a Dask cluster: ``zoomake build --scheduler tcp://host:8786`` or ``--workers N``.

doit runs processes on one host only; Dask distributed runs the work here, nothing home-made.
The client submits one unit of work per model: on a worker, ``build_model`` writes that model's
recipe into a scratch zoo and runs zoomake's own doit build on it (the same tasks and actions as
a local build: fetch -> convert -> optimize -> export -> reference -> measure -> verify) with the shared
artifact cache (``pipelines.build.remote_cache``), so every output it makes goes to the cache, and a
model another machine already built is a chain of cache hits. What comes back through the
scheduler is small JSON: per task, hit / ran / failed with its one-line error.

The client then runs the ordinary local doit build of the zoo with the same cache: every task
whose action a worker ran is a hit and is materialised from the cache (digest-checked), a task
that failed on a worker with the same action key fails again with the worker's line (it is not
redone here), and the ``verify`` gates and the report run as in any local build. So the build
tree, the doit state and the report are those of a local build, and a later local ``doit``
finds everything up to date.

- Retries: a worker lost mid-unit (killed, out of memory, its machine gone) is Dask's to handle:
  the scheduler reruns the unit elsewhere, up to ``distributed.scheduler.allowed-failures``
  times. The unit's doit process dies with its worker (``PR_SET_PDEATHSIG``), and since a task
  stores its outputs only after its action succeeded, and its action record after its objects,
  nothing half-made reaches the cache.
- Heavy models (sources of ``ZOOMAKE_HEAVY_MB`` MB or more, default 200) ask for the Dask
  resource ``heavy: 1``: at most one at a time on a worker started with ``--resources heavy=1``
  (a ``--workers`` cluster declares it; a cluster where no worker declares it runs them as
  any other model, with a warning).
- Ctrl-C: the client sets a Dask ``Event``; every running unit stops its doit build (SIGTERM:
  doit's own interruption, temporaries swept by the next run) and the futures are cancelled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pipelines.errors import ZoomakeError

HEAVY_ENV = "ZOOMAKE_HEAVY_MB"
POLL = 0.5  # seconds between a unit's checks for cancellation
# Paths (PATH-like lists) of the worker's environment that its units' builds read.
PATH_VARS = ("ZOOMAKE_MIRROR", "ZOOMAKE_CACHE", "ZOOMAKE_SHARED", "ZOOMAKE_CAFFE_PYTHON",
             "ZOOMAKE_CAFFE_PYTHONPATH", "ZOOMAKE_MXNET_PYTHON")  # fmt: skip


def _die_with_parent() -> None:
    """preexec_fn: the unit's doit build gets SIGKILL when its worker dies (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def build_model(model_id: str, recipe_text: str, cache_url: str, cancel: str | None) -> dict:
    """One unit of work, on a worker: the model's whole chain through zoomake's doit build in a
    scratch directory, outputs to the cache. Returns small JSON for the client."""
    from pipelines.build import remote_cache

    try:
        from distributed import Event, get_worker

        worker = get_worker()
        where, scratch_root = worker.address, worker.local_directory
        event = Event(cancel) if cancel else None
    except (ImportError, ValueError):  # called outside a worker (a test, a debugger)
        where, scratch_root, event = "local", None, None
    t0 = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix=f"zoomake-{model_id}-", dir=scratch_root))
    try:
        (scratch / "recipes").mkdir()
        (scratch / "recipes" / f"{model_id}.yaml").write_text(recipe_text, encoding="utf-8")
        build = scratch / "build"
        env = {**os.environ, remote_cache.ENV: cache_url}
        env.pop(remote_cache.FAILURES_ENV, None)
        for var in PATH_VARS:  # the build runs in the scratch zoo: relative paths stay right
            if env.get(var):
                env[var] = os.pathsep.join(
                    str(Path(p).expanduser().absolute()) if p else p
                    for p in env[var].split(os.pathsep)
                )
        cmd = [sys.executable, "-m", "pipelines", "build", "--recipes", str(scratch / "recipes"),
               "--build", str(build), "--continue"]  # fmt: skip
        with open(scratch / "output.txt", "wb") as out:
            # cwd: the scratch zoo, so lines name recipes/<id>.yaml as a local build does
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=scratch, preexec_fn=_die_with_parent)  # fmt: skip
            cancelled = False
            while True:
                try:
                    proc.wait(timeout=POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if event is not None and not cancelled and event.is_set():
                    cancelled = True
                    proc.send_signal(signal.SIGTERM)
        output = (scratch / "output.txt").read_text(encoding="utf-8", errors="replace")
        events = [
            {k: e[k] for k in ("task", "event", "key", "error") if k in e}
            for e in remote_cache.read_log(build)
        ]
        return {
            "model": model_id,
            "worker": where,
            "returncode": proc.returncode,
            "cancelled": cancelled,
            "seconds": round(time.perf_counter() - t0, 3),
            "events": events,
            "output": output[-2000:],
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _heavy(recipe: dict) -> bool:
    from pipelines.recipes.stages import recipe_files

    limit = float(os.environ.get(HEAVY_ENV, "200")) * 1e6
    return sum(int(ref.get("size") or 0) for ref in recipe_files(recipe).values()) >= limit


def _connect(scheduler: str | None, workers: int | None):
    """(client, cluster or None)."""
    import logging

    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ZoomakeError(
            "--scheduler/--workers need Dask: pip install 'zoomake[distributed]'"
        ) from None

    dask.config.set({"distributed.scheduler.allowed-failures": 3})
    # Dask's INFO lines (workers starting, comms closing) are not the build's output.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except OSError as exc:
            raise ZoomakeError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, resources={"heavy": 1},
                           silence_logs=logging.ERROR)  # fmt: skip
    return Client(cluster), cluster


def _unit_line(res: dict) -> str:
    events = res["events"]
    hits = sum(e["event"] == "hit" for e in events)
    failed = [e for e in events if e["event"] == "failed"]
    line = (f".  {res['model']} on {res['worker']} ({res['seconds']:.1f} s): "
            f"{len(events) - hits - len(failed)} run, {hits} from the cache")  # fmt: skip
    if failed:
        line += f", failed: {failed[0]['task']}: {failed[0].get('error', '').splitlines()[0]}"
    return line


def run_units(zoo: dict[str, tuple[Path, dict]], cache_url: str, scheduler: str | None,
              workers: int | None) -> list[dict]:  # fmt: skip
    """Submit one unit per model (``{id: (recipe file, recipe)}``), gather the results;
    Ctrl-C cancels."""
    from distributed import Event, as_completed

    client, cluster = _connect(scheduler, workers)
    cancel = f"zoomake-cancel-{uuid.uuid4().hex}"
    futures = {}
    results: list[dict] = []
    try:
        Event(cancel, client=client)  # exists before any unit looks at it
        have_heavy = any(
            "heavy" in (w.get("resources") or {})
            for w in client.scheduler_info()["workers"].values()
        )
        for model_id, (path, recipe) in sorted(zoo.items()):
            resources = None
            if _heavy(recipe):
                if have_heavy:
                    resources = {"heavy": 1}
                else:
                    print(f"dask: no worker declares the resource 'heavy' ({model_id} is "
                          "heavy); start workers with --resources heavy=1", file=sys.stderr)  # fmt: skip
            fut = client.submit(build_model, model_id, path.read_text(encoding="utf-8"),
                                cache_url, cancel, key=f"zoomake-{model_id}-{uuid.uuid4().hex}",
                                pure=False, retries=1, resources=resources)  # fmt: skip
            futures[fut] = model_id
        for fut in as_completed(list(futures)):
            try:
                res = fut.result()
            except Exception as exc:  # KilledWorker after allowed-failures, a unit's own bug
                line = " ".join(str(exc).split())[:300] or type(exc).__name__
                print(f"dask: {futures[fut]}: {type(exc).__name__}: {line}", file=sys.stderr)
                continue
            results.append(res)
            print(_unit_line(res), flush=True)
            if res["returncode"] not in (0, 1) and not res["events"]:  # doit itself failed
                print(res["output"].rstrip(), file=sys.stderr)
    except KeyboardInterrupt:
        print("dask: interrupted, cancelling the submitted work", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            Event(cancel, client=client).set()
            running = [f for f in futures if f.status == "pending"]
            deadline = time.monotonic() + 10 * POLL + 5
            # Units notice the event within POLL and stop their doit; wait for them, then
            # cancel what is left (a unit that has not started never starts).
            client.cancel([f for f in running if f.status == "pending"], force=False)
            while time.monotonic() < deadline and any(f.status == "pending" for f in running):
                time.sleep(POLL)
        raise
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
    return results


def build(scheduler: str | None, workers: int | None, run_local) -> int:
    """``zoomake build --scheduler/--workers``: the units on Dask, then the local pass
    (``run_local()``: the ordinary doit build, with the cache and the workers' failures)."""
    from pipelines.build import lock as build_lock
    from pipelines.build import remote_cache
    from pipelines.locations import build_dir, recipes_dir
    from pipelines.recipes.cache import load_zoo_partial

    url = remote_cache.configured()
    if url is None:
        if scheduler:
            raise ZoomakeError(
                "--scheduler needs a cache every worker reaches: --remote-cache URL or "
                f"{remote_cache.ENV} (e.g. s3://bucket/zoomake)"
            )
        url = str(Path(os.environ.get("ZOOMAKE_CACHE", "~/.cache/zoomake")).expanduser()
                  / "actions")  # fmt: skip
        os.environ[remote_cache.ENV] = url
    _, readonly = remote_cache.parse_url(url)
    if readonly:
        raise ZoomakeError(
            f"{remote_cache.ENV}={url}: a Dask build needs a writable cache (the artifacts "
            "travel through it); a read-only cache serves local builds"
        )
    remote_cache.open_cache(url)  # a bad URL or a missing s3fs: one line, before any work
    build, recipes = build_dir(), recipes_dir()
    build_lock.hold(build)
    valid, _ = load_zoo_partial(recipes, build / ".cache")
    zoo = {model_id: (recipes / f"{model_id}.yaml", r) for model_id, r in valid.items()}
    t0 = time.perf_counter()
    results = run_units(zoo, url, scheduler, workers)
    events = [e for r in results for e in r["events"]]
    hits = sum(e["event"] == "hit" for e in events)
    failures = {e["task"]: {"key": e["key"], "error": e["error"]}
                for e in events if e["event"] == "failed" and e.get("error")}  # fmt: skip
    where = scheduler or f"{workers} local workers"
    print(f"dask: {len(results)} of {len(zoo)} models on {where} in "
          f"{time.perf_counter() - t0:.1f} s: {len(events) - hits - len(failures)} actions run, "
          f"{hits} cache hits, {len(failures)} failed", flush=True)  # fmt: skip
    path = build / ".cache" / "remote-failures.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    from converters.io import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(failures, indent=1, sort_keys=True).encode())
    os.environ[remote_cache.FAILURES_ENV] = str(path)
    return run_local()
