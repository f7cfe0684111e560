"""How a zoo build reports itself: one line per task that runs, one closing line for the zoo.

doit's console reporter prints a ``-- name`` line for every up-to-date task, so a no-op rebuild
of a 27-target zoo prints ~170 lines and a real build ends on whatever task ran last. This
reporter prints nothing for up-to-date tasks and ends with the zoo's state::

    zoo: 27 targets, 25 passed, 2 failed, report: build/report/index.html

so a no-op rebuild prints exactly that line. Executed tasks print doit's ``.  name`` line; on a
terminal the line appears while the task runs and gets its duration when it ends (nothing is
redrawn when the output is a file or a pipe, as in CI). Failures print as doit prints them.
``doit --reporter console`` (or ``zoomake build --reporter console``) gives doit's own output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from doit.reporter import ConsoleReporter

_MODEL_STAGES = ("fetch", "convert", "optimize", "reference")
_TARGET_STAGES = ("export", "measure", "verify")


def _verdict(verify_json: Path) -> bool | None:
    try:
        passed = json.loads(verify_json.read_text(encoding="utf-8")).get("passed")
    except (OSError, ValueError, AttributeError):
        return None
    return passed if isinstance(passed, bool) else None


def _report_verdicts(build: Path) -> dict[tuple[str, str], bool | None]:
    """Each target's status in report.json (the gate's recheck, see pipelines.report.results)."""
    try:
        report = json.loads((build / "report" / "report.json").read_text(encoding="utf-8"))
        return {
            (m["id"], t["name"]): {"passed": True, "failed": False}.get(t.get("status"))
            for m in report["models"]
            for t in m["targets"]
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def zoo_line(zoo: dict[str, dict], build: Path, failed_tasks: set[str], executed: int) -> str:
    """The closing line: the report's verdicts (verify.json where the report has none), and a
    target whose tasks failed in this run counts as failed whatever an older file says."""
    total = passed = failed = missing = 0
    reported = {} if "report" in failed_tasks else _report_verdicts(build)
    for model_id, recipe in zoo.items():
        model_failed = any(f"{s}:{model_id}" in failed_tasks for s in _MODEL_STAGES)
        for name in recipe.get("targets") or {}:
            total += 1
            own_failed = any(f"{s}:{model_id}:{name}" in failed_tasks for s in _TARGET_STAGES)
            verdict = reported.get(
                (model_id, name), _verdict(build / model_id / name / "verify.json")
            )
            if model_failed or own_failed or verdict is False:
                failed += 1
            elif verdict:
                passed += 1
            else:
                missing += 1
    # Models the zoo could not load (an invalid recipe): the report has them as failed at
    # `recipe`, and so does the line (else it would say "0 failed" beside a failing exit).
    invalid = {t.split(":", 1)[1] for t in failed_tasks if t.startswith("recipe:")}
    invalid |= {model_id for model_id, _ in reported if model_id not in zoo}
    for model_id in sorted(invalid - set(zoo)):
        names = [n for m, n in reported if m == model_id] or ["recipe"]
        for name in names:
            total += 1
            verdict = reported.get((model_id, name))
            if f"recipe:{model_id}" in failed_tasks or verdict is False:
                failed += 1
            elif verdict:
                passed += 1
            else:
                missing += 1
    report = build / "report" / "index.html"
    cwd = Path.cwd()
    shown = report.relative_to(cwd) if report.is_relative_to(cwd) else report
    parts = [f"zoo: {total} targets", f"{passed} passed", f"{failed} failed"]
    if missing:
        parts.append(f"{missing} not built")
    line = ", ".join(parts) + f", report: {shown}"
    return line + (" (all up to date)" if not executed and not failed_tasks else "")


class ZooReporter(ConsoleReporter):
    desc = "zoomake: executed tasks and one closing line for the zoo"

    def __init__(self, outstream, options):
        super().__init__(outstream, options)
        self.tty = bool(getattr(outstream, "isatty", lambda: False)())
        self.started: dict[str, float] = {}
        self.failed: set[str] = set()
        self.executed = 0
        self.zoo_run = False

    def initialize(self, tasks, selected_tasks):
        # The closing line describes the zoo's verification: only for runs that verify.
        self.zoo_run = any(
            t.split(":")[0] in ("verify", "report") for t in (selected_tasks or list(tasks))
        )

    def execute_task(self, task):
        if not task.actions or task.name.startswith("_"):
            return
        self.executed += 1
        if not self.tty:
            self.write(f".  {task.title()}\n")
            return
        self.started[task.name] = time.perf_counter()
        self.write(f"\r\033[K.  {task.title()} ...")
        self.outstream.flush()

    def _done(self, task) -> None:
        start = self.started.pop(task.name, None)
        if start is not None:
            self.write(f"\r\033[K.  {task.title()} ({time.perf_counter() - start:.1f} s)\n")

    def add_success(self, task):
        self._done(task)

    def add_failure(self, task, fail):
        self._done(task)
        self.failed.add(task.name)
        super().add_failure(task, fail)

    def skip_uptodate(self, task):
        pass

    def skip_ignore(self, task):
        pass

    def complete_run(self):
        super().complete_run()
        if self.zoo_run and not self.runtime_errors:
            from pipelines.build import run
            from pipelines.build.layout import BUILD

            self.write(zoo_line(run.zoo(), BUILD, self.failed, self.executed) + "\n")
