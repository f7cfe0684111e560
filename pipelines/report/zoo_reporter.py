"""The doit reporter of zoo builds: the build lock, one line per failure, and the end of a run.

It extends ``pipelines.report.doit_reporter.ZooReporter`` (executed tasks only, one closing line for
the zoo, now read from the report this reporter has just written). doit calls a reporter's ``initialize`` before the first task and ``complete_run`` after the
last one in the main process, on success, on failure with or without ``--continue``, on
Ctrl-C, in serial and parallel runs alike. That is the one place that sees every build end,
so it is where the build takes its lock (``pipelines.build.lock``), records what each task
did (``pipelines.build.state``), removes the stale outputs of a model whose stage failed and
rewrites the zoo report. A task skipped because its upstream failed is never run by doit,
so no task of the build itself could do this.

Failures print as ``<task> failed: <one-line error>``, without doit's
``TaskFailed - taskid:...`` banner (tracebacks, i.e. bugs, are still shown in full).
``--reporter console`` (doit's own output) has none of this: no lock, no report.
"""

from __future__ import annotations

import sys
import time

from doit.exceptions import TaskFailed, UnmetDependency

from pipelines.errors import ZoomakeError
from pipelines.report import doit_reporter

UP_TO_DATE, RAN = None, "ran"  # events of a current task; else (kind, message)


def _one_line(fail) -> str:
    if isinstance(fail, TaskFailed):
        lines = [ln for ln in fail.message.splitlines() if ln.strip()]
        return "; ".join(lines) or "failed"
    # An uncaught exception (a bug in zoomake) or doit's own error: its last line says what.
    lines = [ln.strip() for ln in fail.get_msg().splitlines() if ln.strip()]
    return lines[-1] if lines else type(fail).__name__


class ZooReporter(doit_reporter.ZooReporter):
    desc = "zoomake: executed tasks, one line per failure, the report and a closing line"
    serves_stamp = True  # a run with this reporter may be served by pipelines.build.stamp

    def __init__(self, outstream, options):
        super().__init__(outstream, options)
        self.locked = False
        self.run_started: float | None = None
        self.tasks: dict = {}
        self.events: dict[str, tuple[str, str] | None] = {}

    def initialize(self, tasks, selected_tasks):
        from pipelines.build import lock as build_lock
        from pipelines.build.layout import BUILD

        try:
            build_lock.hold(BUILD)
        except ZoomakeError as exc:
            print(f"doit: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        self.locked = True
        from pipelines.build import stamp

        if stamp.RUN["hit"] is not None:  # served by the whole-zoo stamp: nothing to run
            return
        from pipelines.build import remote_cache

        remote_cache.start_run(BUILD)  # this run's cache log (hits, misses)
        self.run_started = time.time()
        self.tasks = tasks
        super().initialize(tasks, selected_tasks)

    def skip_uptodate(self, task):
        super().skip_uptodate(task)
        self.events[task.name] = UP_TO_DATE

    def add_success(self, task):
        super().add_success(task)
        self.events[task.name] = RAN

    def skip_ignore(self, task):
        super().skip_ignore(task)
        self.events[task.name] = ("blocked", "was not built (doit ignore)")

    def add_failure(self, task, fail):
        self._done(task)  # the closing line's bookkeeping; no doit failure banner
        self.failed.add(task.name)
        if isinstance(fail, UnmetDependency):
            self.events[task.name] = ("blocked", f"was not built: {fail.message} failed")
            return
        line = _one_line(fail)
        self.events[task.name] = ("failed", line)
        self.failures.append({"task": task, "exception": fail})
        if isinstance(fail, TaskFailed):
            for text in fail.message.splitlines() or ["failed"]:
                print(f"{task.name} failed: {text}", file=sys.stderr)
        else:
            print(f"{task.name} failed: {fail.get_msg().rstrip()}", file=sys.stderr)

    def complete_run(self):
        for result in self.failures:  # what a failed task printed while doit captured it
            task = result["task"]
            out = "".join(a.out for a in task.actions if getattr(a, "out", None))
            if task.executed and out.strip():
                self.write(f"{task.name} <stdout>:\n{out}\n")
        if self.runtime_errors:
            self.write("Execution aborted.\n" + "\n".join(self.runtime_errors) + "\n")
        if not self.locked:
            return
        from pipelines.build import stamp

        if stamp.RUN["hit"] is not None:  # what the no-op run it stands for printed
            self.write(stamp.RUN["hit"])
            return
        from pipelines.build import run
        from pipelines.build.layout import BUILD

        reported = True
        try:
            run.finish_run(self.tasks, self.events, self.run_started)
        except (OSError, ZoomakeError) as exc:
            print(f"doit: cannot write the zoo report: {exc}", file=sys.stderr)
            reported = False  # no stamp for a run that wrote no report
        from pipelines.build import remote_cache

        text = ""
        cache_line = remote_cache.summary(BUILD)
        if cache_line:
            text += cache_line + "\n"
        if self.zoo_run and not self.runtime_errors:  # read from the report just written
            text += doit_reporter.zoo_line(run.zoo(), BUILD, self.failed, self.executed) + "\n"
        self.write(text)
        # Every task of the zoo found up to date: the next plain `doit` may be served by the stamp.
        clean = (
            reported
            and self.zoo_run
            and not self.runtime_errors
            and not self.failures
            and not self.failed
            and self.executed == 0
            and not run.invalid_recipes()
            and self.events
            and all(
                event is UP_TO_DATE or (event == RAN and not self.tasks[name].actions)
                for name, event in self.events.items()
            )
        )
        stamp.after_run(bool(clean), text)
