"""The whole-zoo stamp: a no-op ``doit`` on a big zoo without creating a single task.

A run in which every task of the zoo was found up to date (nothing executed, nothing failed,
no invalid recipe) records, in ``<build>/.cache/zoo-stamp.json``, a digest of everything that
could make a task of a later run not up to date, and the closing line it printed. The next
``doit`` (``run``, the default tasks, no ``-a``, the zoo's reporter, no command-line variables,
no baseline) whose digest is the same prints that line and stops before doit loads any task:
doit itself, loading the 35,000 tasks of a 5,000-recipe zoo and checking each, would have
found them all up to date and changed nothing.

What the digest covers (names, sizes, mtimes, ctimes, inodes, modes: stricter than doit, which
trusts an unchanged mtime), each a way a task can go out of date:

- every file under the recipes directory (``recipe:``/the config each task keeps);
- every file of zoomake's code (``converters/``, ``formats/``, ``pipelines/``, ``schemas/``,
  ``dodo.py``, ``pyproject.toml``): a superset of every stage's code closure
  (``pipelines.build.fingerprints``) and of the task creators, so any code edit reruns the
  ordinary doit path, which reruns exactly the stages whose closure changed;
- the names of the installed distributions on ``sys.path`` (their versions are in the
  fingerprints), the Python and doit versions, every ``ZOOMAKE_*``/``DOIT_*`` variable, the
  working directory and doit's options that reach the tasks (dep file, backend, checker);
- every file of the download cache (the source model files) but the side runtimes' trees, and
  each side runtime's ``runtime.json`` (``runtime:<fw>``'s uptodate, the reference config), or
  for one given by ``ZOOMAKE_<FW>_PYTHONPATH`` the README naming its build;
- every file of the build tree (artifacts, golden sets, sources, doit's database, the
  report), but ``.cache/`` and the lock file.

It needs one of zoomake's loaders (``pipelines.build.doit_loader``): ``doit`` in a directory
whose ``pyproject.toml`` selects the ``zoomake`` loader (this repository's does), or ``zoomake
build``; with doit's own loader every run loads the tasks as before. A run of that loader
leaves the stamp in place, but whatever it rebuilds changes a file the digest covers (doit's
database included), so the stamp no longer matches.

``doit list`` is served the same way from the listing an earlier one printed (``_listing``:
its key is the part of the digest the task definitions are made of). The stamp is removed at
the start of every other doit command (``list``, ``info``, ``help`` change nothing and keep it), so a run that may write the build never leaves a stale stamp
behind, and a stamp is never written when a file it covers was modified within the last
``RACY_S`` seconds (a later edit within the same mtime tick would look unchanged).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import time
from pathlib import Path

VERSION = 1
STAMP_NAME = "zoo-stamp.json"
RACY_S = 2.0
READ_ONLY_COMMANDS = frozenset({"list", "info", "help", "tabcompletion", "dumpdb"})
CODE_DIRS = ("converters", "formats", "pipelines", "schemas")
CODE_FILES = ("dodo.py", "pyproject.toml")
_DIST_SUFFIXES = (".dist-info", ".egg-info", ".egg-link", ".pth")


def stamp_path(build: Path) -> Path:
    return Path(build) / ".cache" / STAMP_NAME


def _walk(top: str, lines: list[str], newest: list[int], skip: frozenset[str] = frozenset()):
    """Append ``path size mtime ctime ino mode`` for every file under ``top`` (symlinks
    followed, as doit's file_dep are); ``newest[0]``: the latest mtime seen."""
    try:
        it = os.scandir(top)
    except (FileNotFoundError, NotADirectoryError):
        lines.append(f"{top} absent")
        return
    with it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.name in skip or e.name == "__pycache__":
            continue
        try:
            if e.is_dir():
                _walk(e.path, lines, newest)
                continue
            st = e.stat()
        except FileNotFoundError:  # a dangling link: doit would see a missing file
            lines.append(f"{e.path} dangling")
            continue
        lines.append(f"{e.path} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino} "
                     f"{st.st_mode}")  # fmt: skip
        if st.st_mtime_ns > newest[0]:
            newest[0] = st.st_mtime_ns


def _distributions() -> list[str]:
    found = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found.append(
            f"{entry}: " + " ".join(sorted(n for n in names if n.endswith(_DIST_SUFFIXES)))
        )
    return found


def _definitions(recipes: Path, code_root: Path, options: str) -> tuple[list[str], list[int]]:
    """What the task definitions are made of: the recipes, the code, the installed
    distributions, Python, doit, the environment and working directory, ``options``."""
    import doit

    lines = [f"v{VERSION}", sys.executable, sys.version, str(doit.__version__), os.getcwd(),
             options]  # fmt: skip
    lines += sorted(
        f"{k}={v}" for k, v in os.environ.items() if k.startswith(("ZOOMAKE_", "DOIT_"))
    )
    lines += _distributions()
    newest = [0]
    _walk(str(recipes), lines, newest)
    for name in CODE_DIRS:
        _walk(str(Path(code_root) / name), lines, newest)
    for name in CODE_FILES:
        _stat_one(Path(code_root) / name, lines, newest)
    return lines, newest


def _stat_one(path: Path, lines: list[str], newest: list[int]) -> None:
    """``_walk``'s line for one file that may be absent."""
    try:
        st = path.stat()
    except OSError:
        lines.append(f"{path} absent")
        return
    lines.append(f"{path} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}")
    newest[0] = max(newest[0], st.st_mtime_ns)


def zoo_state(build: Path, recipes: Path, code_root: Path, cache: Path, options: str = ""):
    """``(digest, newest_input_mtime_ns)`` of everything a no-op depends on (module doc)."""
    lines, newest = _definitions(recipes, code_root, options)
    _walk(str(cache), lines, newest, skip=frozenset({"runtimes", "tmp"}))
    runtimes = Path(cache) / "runtimes"
    if runtimes.is_dir():
        for fw in sorted(os.listdir(runtimes)):
            _stat_one(runtimes / fw / "runtime.json", lines, newest)
    # A side runtime given by ZOOMAKE_<FW>_PYTHON(PATH): the README beside its path entries
    # names its build (runtimes.side.build_note, in measure's reference config).
    for var, value in sorted(os.environ.items()):
        if var.startswith("ZOOMAKE_") and var.endswith("_PYTHONPATH"):
            for entry in (p for p in value.split(os.pathsep) if p):
                _stat_one(Path(entry).parent / "README.md", lines, newest)
    # Written by the run that writes the stamp (report, doit's database, the status file):
    # covered, but not counted as recent inputs.
    _walk(str(build), lines, [0], skip=frozenset({".cache", ".lock"}))
    digest = hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()
    return digest, newest[0]


def remove(build: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        stamp_path(build).unlink()


def write(build: Path, digest: str, newest_ns: int, text: str) -> bool:
    """Record a no-op run (``text``: what it printed at the end); False when an input is too
    recent to be trusted by its mtime (the next no-op writes it)."""
    if newest_ns > (time.time() - RACY_S) * 1e9:
        return False
    from converters.io import atomic_output

    path = stamp_path(build)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps({"version": VERSION, "digest": digest, "text": text}))
    except OSError:
        return False  # a cache: the next run takes the ordinary path
    return True


def read(build: Path) -> dict | None:
    try:
        data = json.loads(stamp_path(build).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    return data


# -- one doit run: the loaders (pipelines.build.doit_loader) and the reporter call these ----------
# ``options``: what the digest keeps of the run's options; ``hit``: the stamp's text when this
# run is served by it (the reporter prints it and does nothing else).
RUN: dict = {"eligible": False, "options": "", "hit": None}
SHORTCUT_TASK = "zoo-up-to-date"


def _eligible(cmd_name: str, pos_args: list[str], opts) -> bool:
    """A plain ``doit``: the default tasks, no ``-a``, the zoo's reporter, no
    command-line variable (``baseline=``), no baseline (compared on every run)."""
    from doit import doit_cmd

    return (
        cmd_name == "run"
        and not pos_args
        and not opts.get("always")
        # the zoo's reporter (pipelines.report.zoo_reporter; not imported: it imports this)
        and getattr(opts.get("reporter"), "serves_stamp", False) is True
        and not doit_cmd._CMDLINE_VARS  # `doit baseline=DIR` and any other variable
        and not os.environ.get("ZOOMAKE_BASELINE")
    )


def before_tasks(cmd, pos_args: list[str], opts) -> list | None:
    """Called before doit loads the tasks: the one-task list of a run the stamp serves, else
    None (and the stamp is removed unless the command only reads)."""
    from pipelines.build.layout import BUILD, RECIPES, REPO
    from pipelines.fetch.cache import default_cache_dir

    RUN.update(eligible=False, hit=None)
    name = getattr(cmd, "name", "")
    if name == "list":
        return _listing(cmd, pos_args, opts)
    if name in READ_ONLY_COMMANDS:
        return None
    if not _eligible(name, pos_args, opts):
        remove(BUILD)
        return None
    RUN["eligible"] = True
    RUN["options"] = " ".join(
        str(opts.get(k)) for k in ("dep_file", "backend", "check_file_uptodate", "codec_cls")
    )
    found = read(BUILD)
    if found is None:
        return None
    digest, _ = zoo_state(BUILD, RECIPES, REPO, default_cache_dir(), RUN["options"])
    if found.get("digest") != digest:
        remove(BUILD)
        return None
    from doit.task import Task

    RUN["hit"] = found.get("text", "")
    cmd.sel_tasks = [SHORTCUT_TASK]
    return [Task(SHORTCUT_TASK, actions=None, uptodate=[True], doc="the whole zoo is up to date")]


def after_run(clean: bool, text: str) -> None:
    """Called by the reporter at the end of a run it finished (report written): a clean no-op
    (``clean``: every task up to date, none failed, no invalid recipe) of an eligible run
    writes the stamp with what the run printed at the end."""
    if not RUN["eligible"] or RUN["hit"] is not None or not clean:
        return
    from pipelines.build.layout import BUILD, RECIPES, REPO
    from pipelines.fetch.cache import default_cache_dir

    digest, newest = zoo_state(BUILD, RECIPES, REPO, default_cache_dir(), RUN["options"])
    write(BUILD, digest, newest, text)


# -- `doit list` from the listing a previous one printed ------------------------------------------
# Task names and docs are made of the recipes, the code, the environment and the working
# directory alone (``_definitions``): no build output. A ``doit list`` (without ``--status``
# or ``--deps``, which read doit's database and the task files) whose inputs and options are
# those of an earlier one prints what that one printed, without loading the tasks.
LISTING_OPTIONS = ("subtasks", "quiet", "private", "template", "sort")


def listing_path(build: Path, options: str) -> Path:
    name = hashlib.sha256(options.encode()).hexdigest()[:16]
    return Path(build) / ".cache" / f"list-{name}.json"


def _listing(cmd, pos_args: list[str], opts) -> list | None:
    if opts.get("status") or opts.get("list_deps"):
        return None
    from pipelines.build.layout import BUILD, RECIPES, REPO

    options = json.dumps([[str(opts.get(k)) for k in LISTING_OPTIONS], list(pos_args)])
    lines, newest = _definitions(RECIPES, REPO, options)
    digest = hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()
    path = listing_path(BUILD, options)
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        found = None
    original = cmd._execute
    if isinstance(found, dict) and found.get("digest") == digest:

        @functools.wraps(original)  # doit passes the options by the signature's names
        def served(*args, **kwargs):
            cmd.outstream.write(found.get("text", ""))
            return 0

        cmd._execute = served
        return []

    @functools.wraps(original)
    def recorded(*args, **kwargs):
        import io

        shown, buffer = cmd.outstream, io.StringIO()
        cmd.outstream = _Tee(shown, buffer)
        try:
            result = original(*args, **kwargs)
        finally:
            cmd.outstream = shown
        # Not for a zoo with invalid recipes (a recipe:<id> task each): their error lines go
        # to stderr while the tasks load.
        invalid = any(t.name.startswith("recipe:") for t in cmd.task_list)
        recent = newest[0] > (time.time() - RACY_S) * 1e9
        if result in (0, None) and not recent and not invalid:
            from converters.io import atomic_output

            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_output(path) as tmp:
                    tmp.write_text(json.dumps({"digest": digest, "text": buffer.getvalue()}))
            except OSError:
                pass  # a cache: the next `doit list` loads the tasks
        return result

    cmd._execute = recorded
    return None


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()
