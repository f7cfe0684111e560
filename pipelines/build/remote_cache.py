"""The shared artifact cache: Bazel's remote-cache idea on any fsspec file system.

``ZOOMAKE_REMOTE_CACHE=<url>`` (or ``zoomake build --remote-cache URL``) names it: a directory,
``s3://bucket/prefix`` through s3fs, ``gs://...`` with gcsfs, anything fsspec opens; fsspec's
own ``FSSPEC_<PROTOCOL>_<OPTION>`` variables carry storage options (an endpoint, a profile).
``?readonly`` at the end of the URL makes a build read it and never write (untrusted CI jobs).

Layout under the URL::

  cas/<sha256>       one object per distinct output file, named by the sha256 of its bytes
  ac/<key>.json      one action record per action key: {"outputs": {path: {sha256, size, mode}}}

A stage task's **action key** is the sha256 of what decides "up to date" for doit today: the
task's name, the recipe sub-tree the stage reads and the fingerprint of its code (import closure
and the versions of the libraries it imports; the ``config_changed`` value of the task), the
sha256 of each of its input files, its output names, and the platform (machine, Python). Before
the task's action runs, its key is looked up; a hit materialises the outputs into the build tree
(streamed into temporaries beside their targets, each checked against its size and sha256, then
renamed into place) instead of running. A miss runs the action and, on success, stores every
output object first and the action record last, so a reader never finds a record whose objects
are not all there, and a writer killed mid-way leaves at most unreferenced objects. A record or
object that fails its check (truncated, corrupted, missing, not JSON) is reported in one warning
line, never used, and the task is rebuilt (which overwrites the bad entry when writable).

``reference`` and ``measure`` are cached like the others: their records bring ``reference.json``
/ ``verify.json`` and the golden sets, so
the report of a build that hit the cache everywhere equals that of the build that did the work
(but for the run's own provenance: when and where it ran).
The ``verify`` gate is not cached: it is the check, and it runs on what was materialised.

Each run appends what every cached task did to ``<build>/.cache/remote-cache.jsonl`` (the
reporter prints the summary line; ``pipelines.build.distributed`` gathers it from its workers).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import sys
from pathlib import Path, PurePosixPath

from pipelines.errors import ZoomakeError

ENV = "ZOOMAKE_REMOTE_CACHE"
# Set by pipelines.distributed for the client's local pass: tasks that failed on a worker with
# the same action key fail again with the worker's line instead of redoing the work here.
FAILURES_ENV = "ZOOMAKE_REMOTE_FAILURES"
FORMAT = 1
LOG_NAME = "remote-cache.jsonl"
STAGING = "remote-cache"  # the name materialisation's staging directory is a temporary of
CHUNK = 1 << 20
# Outputs a stage writes besides its doit targets, by glob under its first target's directory:
# measure's golden sets and reference's stored reference sets (their number comes from the
# recipe, their names from the model).
EXTRA_OUTPUTS = {"measure": "test_data_set_*", "reference": "test_data_set_*"}
_warned: set[str] = set()


class CacheError(ZoomakeError):
    """The cache cannot be used for this entry (unreachable, corrupted): warn and rebuild.
    ``quiet``: an object already reported bad in this process (one warning per object)."""

    def __init__(self, message: str, quiet: bool = False):
        super().__init__(message)
        self.quiet = quiet


def warn(line: str) -> None:
    """One line on stderr, once per process for the same line."""
    if line not in _warned:
        _warned.add(line)
        print(f"zoomake: remote cache: {line}", file=sys.stderr, flush=True)


def parse_url(url: str) -> tuple[str, bool]:
    """``(url without the query, read-only?)``; ``?readonly`` (or ``?readonly=1``) marks it."""
    base, sep, query = url.partition("?")
    readonly = False
    if sep:
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if name != "readonly":
                raise CacheError(f"{url}: unknown option '{name}' (only ?readonly)")
            readonly = value.lower() not in ("0", "false", "no")
    if "://" not in base:  # a plain directory: absolute, so workers and child processes agree
        base = str(Path(base).expanduser().absolute())
    return base, readonly


def configured() -> str | None:
    return os.environ.get(ENV, "").strip() or None


@functools.cache
def open_cache(url: str) -> RemoteCache:
    return RemoteCache(url)


def _sha256_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class RemoteCache:
    def __init__(self, url: str):
        try:
            import fsspec
        except ImportError:
            raise CacheError(
                f"{ENV}={url} needs fsspec: pip install 'zoomake[distributed]'"
            ) from None
        self.url = url
        base, self.readonly = parse_url(url)
        try:
            self.fs, root = fsspec.core.url_to_fs(base)
        except (ImportError, ValueError) as exc:  # e.g. s3:// without s3fs
            raise CacheError(f"{base}: {exc}") from None
        self.root = root.rstrip("/")
        self.local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )
        self.display = base
        self.bad: set[str] = set()  # objects found corrupted: stored again even if present

    def _p(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    # -- reading ------------------------------------------------------------------------------
    def lookup(self, key: str) -> dict | None:
        """The action record of ``key``, None on a miss; CacheError if it is unusable."""
        path = self._p("ac", f"{key}.json")
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # unreachable store, permissions: a miss, said once
            raise CacheError(f"cannot read {self.display}: {_one_line(exc)}") from None
        try:
            record = json.loads(data)
            outputs = record["outputs"]
            ok = record.get("format") == FORMAT and isinstance(outputs, dict) and outputs
            for name, out in outputs.items():
                ok = ok and isinstance(name, str) and isinstance(out, dict)
                ok = ok and isinstance(out.get("sha256"), str) and len(out["sha256"]) == 64
                ok = ok and isinstance(out.get("size"), int) and isinstance(out.get("mode"), int)
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise CacheError(f"ac/{key}.json is not a valid action record; rebuilding")
        return record

    def materialise(self, record: dict, build: Path, allowed, out_dir: Path, replace) -> None:
        """Place the record's outputs under ``build``, every byte checked against its digest:
        all are staged in a temporary directory in ``out_dir`` first and renamed into place
        only when every one is right, so a bad entry changes nothing on disk. ``allowed(rel)``
        says which paths the task may write (a record names files, never where they land
        outside the task's outputs); the directories ``replace()`` lists (measure's golden
        sets) are removed just before the new ones land."""
        import shutil
        import tempfile

        from converters.io import fsync_path, sweep_temporaries, temp_prefix

        out_dir.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(out_dir / STAGING)  # what a killed materialiser left
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(out_dir / STAGING), dir=out_dir))
        try:
            staged = []
            for n, (rel, out) in enumerate(sorted(record["outputs"].items())):
                pure = PurePosixPath(rel)
                if pure.is_absolute() or ".." in pure.parts or not allowed(rel):
                    raise CacheError(f"an action record names '{rel}', not an output of the task")
                tmp = staging / str(n)
                self._download(out["sha256"], out["size"], tmp, rel)
                os.chmod(tmp, out["mode"] & 0o777)
                staged.append((tmp, build / pure))
            for old in replace():
                shutil.rmtree(old, ignore_errors=True)
            for tmp, dest in staged:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dest)
            for parent in sorted({dest.parent for _, dest in staged}):
                fsync_path(parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _download(self, sha: str, size: int, tmp: Path, rel: str) -> None:
        if sha in self.bad:  # another record of this build named the same bad object
            raise CacheError(f"cas/{sha} is bad (reported above); rebuilding", quiet=True)
        h, got = hashlib.sha256(), 0
        try:
            with self.fs.open(self._p("cas", sha), "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    got += len(chunk)
                    if got > size:
                        break
                    h.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except FileNotFoundError:
            self.bad.add(sha)
            raise CacheError(f"cas/{sha} ({rel}) is missing; rebuilding") from None
        except OSError as exc:
            raise CacheError(f"cannot read cas/{sha} ({rel}): {_one_line(exc)}") from None
        if got != size:
            self.bad.add(sha)
            what = "truncated" if got < size else "longer than recorded"
            raise CacheError(f"cas/{sha} ({rel}) is {what} ({got} bytes, expected {size}); "
                             "rebuilding")  # fmt: skip
        if h.hexdigest() != sha:
            self.bad.add(sha)
            raise CacheError(
                f"cas/{sha} ({rel}) is corrupted (its sha256 is {h.hexdigest()}); rebuilding"
            )

    # -- writing ------------------------------------------------------------------------------
    def store(self, key: str, files: dict[str, Path]) -> None:
        """Upload the objects of ``files`` (relative name -> path), then the record."""
        outputs = {}
        for rel, path in sorted(files.items()):
            sha, size = _sha256_file(path)
            outputs[rel] = {"sha256": sha, "size": size, "mode": os.stat(path).st_mode & 0o777}
            obj = self._p("cas", sha)
            if sha not in self.bad and self._present(obj, size):
                continue
            self._put_file(path, obj)
            self.bad.discard(sha)
        record = {"format": FORMAT, "outputs": outputs}
        self._put_bytes(json.dumps(record, indent=1, sort_keys=True).encode(),
                        self._p("ac", f"{key}.json"))  # fmt: skip

    def _present(self, obj: str, size: int) -> bool:
        try:
            return self.fs.info(obj).get("size") == size
        except FileNotFoundError:
            return False

    def _put_file(self, path: Path, obj: str) -> None:
        if self.local:  # a directory: copy beside, fsync, rename (readers never see half)
            from converters.io import atomic_output

            dest = Path(obj)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(dest) as tmp, open(path, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
        else:  # an object store: an object appears whole or not at all (multipart included)
            self.fs.put_file(str(path), obj)

    def _put_bytes(self, data: bytes, obj: str) -> None:
        if self.local:
            from converters.io import atomic_write_bytes

            Path(obj).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(obj, data)
        else:
            self.fs.pipe_file(obj, data)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


# -- doit integration -----------------------------------------------------------------------------
def _rel(path: Path, build: Path) -> str:
    with contextlib.suppress(ValueError):
        return path.resolve().relative_to(build.resolve()).as_posix()
    return str(path.resolve())


def action_key(task: str, config, inputs: list[Path], outputs: list[str], build: Path) -> str:
    """sha256 of everything that decides a task's outputs (see the module docstring)."""
    payload = {
        "format": FORMAT,
        "task": task,
        "config": config,
        "inputs": {_rel(p, build): _sha256_file(p)[0] for p in sorted(inputs)},
        "outputs": sorted(outputs),
        "platform": [platform.machine(), sys.implementation.name, *sys.version_info[:2]],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def log_path(build: Path) -> Path:
    return build / ".cache" / LOG_NAME


def _log(build: Path, event: dict) -> None:
    path = log_path(build)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:  # one short write per line: whole lines even from parallel doit workers
            os.write(fd, (json.dumps(event, sort_keys=True) + "\n").encode())
        finally:
            os.close(fd)


def read_log(build: Path) -> list[dict]:
    try:
        lines = log_path(build).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def start_run(build: Path) -> None:
    """A new run's log (the reporter calls it with the build lock held)."""
    log_path(build).unlink(missing_ok=True)


def summary(build: Path) -> str | None:
    """``remote cache <url>: N hits, M misses ...`` for this run, None without a cache."""
    url = configured()
    if url is None:
        return None
    events = [e.get("event") for e in read_log(build)]
    hits, misses = events.count("hit"), events.count("miss") + events.count("rebuilt")
    line = f"remote cache {parse_url(url)[0]}: {hits} hits, {misses} misses"
    if events.count("rebuilt"):
        line += f" ({events.count('rebuilt')} bad entries rebuilt)"
    if events.count("failed"):
        line += f", {events.count('failed')} failed"
    return line


def _remote_failures() -> dict:
    path = os.environ.get(FAILURES_ENV)
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_cached(spec: dict, action, args: list):
    """A stage task's action under the cache: look up, materialise or run and store."""
    from doit.exceptions import TaskFailed

    build = Path(spec["build"])
    task = spec["task"]
    targets = [Path(t) for t in spec["targets"]]
    out_dir = targets[0].parent
    extra = EXTRA_OUTPUTS.get(task.split(":", 1)[0])
    try:
        cache = open_cache(spec["url"])
        key = action_key(task, spec["config"], [Path(p) for p in spec["inputs"]],
                         [_rel(t, build) for t in targets], build)  # fmt: skip
    except (CacheError, OSError) as exc:  # no cache today: build as without one
        warn(_one_line(exc))
        return action(*args)

    wanted = {_rel(t, build) for t in targets}
    extra_prefix = _rel(out_dir, build) + "/"

    def allowed(rel: str) -> bool:
        if rel in wanted:
            return True
        if extra is None or not rel.startswith(extra_prefix):
            return False
        parts = PurePosixPath(rel[len(extra_prefix) :]).parts
        return len(parts) == 2 and PurePosixPath(parts[0]).match(extra)

    event = "miss"
    try:
        record = cache.lookup(key)
        if record is not None:
            if not wanted <= set(record["outputs"]):
                raise CacheError(f"ac/{key}.json lacks outputs of {task}; rebuilding")
            cache.materialise(record, build, allowed, out_dir,
                              lambda: sorted(out_dir.glob(extra)) if extra else [])  # fmt: skip
            _log(build, {"task": task, "event": "hit", "key": key})
            return True
    except CacheError as exc:
        if not exc.quiet:
            warn(str(exc))
        event = "rebuilt"
    except Exception as exc:  # the store misbehaving is never the build's failure
        warn(f"{task}: {_one_line(exc)}")
    failed = _remote_failures().get(task)
    if isinstance(failed, dict) and failed.get("key") == key and failed.get("error"):
        _log(build, {"task": task, "event": "failed", "key": key, "error": failed["error"]})
        return TaskFailed(failed["error"])
    import time

    t0 = time.perf_counter()
    result = action(*args)
    seconds = round(time.perf_counter() - t0, 3)
    if isinstance(result, TaskFailed) or result is False:
        error = result.message if isinstance(result, TaskFailed) else "failed"
        _log(build, {"task": task, "event": "failed", "key": key, "error": error})
        return result
    if not cache.readonly:
        files = {_rel(t, build): t for t in targets if t.is_file()}
        if extra:
            for d in sorted(out_dir.glob(extra)):
                files.update({_rel(f, build): f for f in sorted(d.iterdir()) if f.is_file()})
        try:
            cache.store(key, files)
        except Exception as exc:  # a full or unreachable store: the build itself is fine
            warn(f"cannot store {task}: {_one_line(exc)}")
    _log(build, {"task": task, "event": event, "key": key, "seconds": seconds})
    return result


def cacheable(creator):
    """Wrap a doit task creator: with a cache configured, each task's (last) action runs under
    ``run_cached``; without one the tasks are exactly the creator's."""

    @functools.wraps(creator)
    def tasks():
        from doit.tools import config_changed

        from pipelines.locations import build_dir

        url = configured()
        stage = creator.__name__.removeprefix("task_")
        for task in creator():
            configs = [u.config for u in task.get("uptodate", []) if isinstance(u, config_changed)]
            if url is None or not task.get("targets") or not configs:
                yield task
                continue
            *first, (fn, args) = task["actions"]
            spec = {
                "url": url,
                "build": str(build_dir()),
                "task": f"{stage}:{task['name']}",
                "config": configs[0],
                "inputs": list(task.get("file_dep", [])),
                "targets": list(task["targets"]),
            }
            yield {**task, "actions": [*first, (run_cached, [spec, fn, list(args)])]}

    return tasks
