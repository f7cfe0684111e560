"""The end of a doit run (the reporter calls it, whatever failed): record what each task did in
the build state (``pipelines.build.state``), drop the stale outputs of a model whose stage
failed, and rewrite the zoo report (``pipelines.report.results``) from the state and the tree.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipelines.build.state import (
    BuildState,
    chain,
    downstream,
    load_failures,
    report_key,
    save_failures,
)

REPORT_FILES = ("report.json", "junit.xml", "index.html")


def _report_key(names: set[str], report_code: str) -> str:
    """What a no-op run's report depends on besides the build tree: the targets and the code."""
    return hashlib.sha256(json.dumps([sorted(names), report_code]).encode()).hexdigest()


def finish_run(
    build: Path,
    zoo: dict[str, dict],
    invalid: dict[str, list[str]],
    tasks: dict,
    events: dict,
    dep_file: str,
    report_code: str,
    started: float | None = None,
    baseline: str | None = None,
) -> None:
    """End of a doit run: record failures, drop the stale outputs of models whose stage
    failed, rewrite the report. ``tasks``: doit's Task objects by name; ``events``: task ->
    None (up to date), ``"ran"`` or ``(kind, message)``, kind ``failed`` / ``blocked``;
    ``report_code``: the fingerprint of the code that writes the report; ``started``: when
    the run began; ``baseline``: a previous build or report to compare with (``pipelines.report.baseline``).

    A run in which every task of the zoo was up to date changed nothing the report reads, so
    the report it would write is the one on disk: it is kept unless the set of targets or the
    report code changed (a no-op build stays cheap on a big zoo).
    """
    names = {t for i, recipe in zoo.items() for name in recipe["targets"] for t in chain(i, name)}
    gates = {f"verify:{i}:{t}" for i, recipe in zoo.items() for t in recipe["targets"]}
    key = _report_key(names, report_code + (baseline or ""))
    previous = load_failures(build)
    if (
        all(name in events and events[name] is None for name in names | gates)
        and not invalid
        and not previous
        and not baseline  # a baseline (it may have changed) is compared on every run
        and report_key(build) == key
        and all((build / "report" / f).is_file() for f in REPORT_FILES)
    ):
        return
    state = BuildState(invalid=invalid)
    state.failed = {k: v for k, v in previous.items() if k in names}
    for name, event in events.items():
        if name not in names:
            continue
        state.failed.pop(name, None)
        if event is None or event == "ran":
            continue
        kind, message = event
        if kind != "failed":
            state.stale[name] = message
            continue
        state.failed[name] = message
        model_id = name.split(":")[1]
        for stale in [name, *downstream(name, list(zoo[model_id]["targets"]))]:
            _remove_outputs(tasks.get(stale))
    unreached = sorted(n for n in names - set(events) if n in tasks and n not in state.failed)
    if unreached:
        # Not reached in this run (a partial selection, or stopped at a failure): doit's own
        # database says whether each is still current.
        from doit.dependency import Dependency, MD5Checker, SqliteDB

        deps = Dependency(SqliteDB, dep_file, checker_cls=MD5Checker)
        for name in unreached:
            if deps.get_status(tasks[name], tasks).status != "up-to-date":
                state.stale[name] = "is out of date (not run since its inputs changed)"
    from pipelines.report.results import write_report  # after the no-op check: ~20 ms of imports

    report = write_report(zoo, build, build / "report", state, started=started, baseline=baseline)
    if (report.get("baseline") or {}).get("error"):  # the report is written; say why it lacks it
        import sys

        print(f"doit: {report['baseline']['error']} (no vs-baseline column)", file=sys.stderr)
    save_failures(build, state.failed, key)


def _remove_outputs(task) -> None:
    """A failed model's outputs from an earlier build: gone, so nothing can take them as current."""
    if task is None:
        return
    for target in task.targets:
        Path(target).unlink(missing_ok=True)
    if task.name.startswith(("measure:", "reference:")):  # golden sets as stale as the index
        import shutil

        from pipelines.verify.golden import golden_sets

        for golden in golden_sets(Path(task.targets[0]).parent):
            shutil.rmtree(golden, ignore_errors=True)
