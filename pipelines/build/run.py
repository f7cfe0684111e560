"""One doit run of the zoo: the valid and invalid recipes it builds (loaded once per process),
the code fingerprint of each stage, and the end of the run (the reporter calls ``finish_run``).
The reporters (``pipelines.report``) and the task creators read the run from here.
"""

from __future__ import annotations

import functools
import gc
import sys

from pipelines.build.layout import BUILD, DEP_FILE, RECIPES, REPO
from pipelines.errors import ZoomakeError

# The action each stage runs; its code fingerprint is that function's import closure
# (pipelines.build.fingerprints): project files it can reach and the third-party versions it imports.
STAGE_ACTIONS = {"fetch": "act_fetch", "convert": "act_convert", "optimize": "act_optimize",
                 "export": "act_export", "reference": "act_reference", "measure": "act_measure",
                 "verify": "act_verify",
                 "report": "pipelines.report.results:write_report"}  # fmt: skip


@functools.cache
def _scanner():
    from pipelines.build.fingerprints import Scanner

    return Scanner(REPO, BUILD / ".cache" / "code-closure.json")


@functools.cache
def code_fingerprint(stage: str, uses: tuple[tuple[str, str], ...] = ()) -> str:
    """sha256 over the code a stage runs and the versions of the libraries it imports.

    ``uses``: the ``(function, format)`` the task calls (``formats.fingerprint_entries``); the
    stage reaches them through the ``formats`` registry, so their closures are added here (a
    Caffe source's converter is in convert:<id>'s fingerprint, not in an ONNX-source model's)."""
    from formats import fingerprint_entries
    from pipelines.build.fingerprints import fingerprint

    scanner = _scanner()
    module, _, function = STAGE_ACTIONS[stage].rpartition(":")
    extra = fingerprint_entries(*uses)
    digest, _ = fingerprint(scanner, module or "pipelines.build.actions", function, extra)
    scanner.save()
    return digest


def _pause_gc() -> None:
    """Python's cyclic collector off while doit loads the tasks and checks which are current.

    doit makes a dozen objects per task; on a zoo of 5,000 recipes (35,000 tasks) the collector,
    running again and again over all of them, triples the time of `doit list` and of a no-op
    build (bench/bench_doit.py). Nothing made before an action runs is cyclic garbage worth
    collecting; the first action (``actions.sweep``, ``actions.guarded``) and the end of the run
    switch it back on (``actions.resume_gc``), in the main process and in every doit worker."""
    gc.disable()


@functools.cache
def _load() -> tuple[dict[str, dict], dict[str, list[str]]]:
    from pipelines.recipes.cache import load_zoo_partial

    _pause_gc()
    try:
        valid, invalid = load_zoo_partial(RECIPES, BUILD / ".cache")
    except ZoomakeError as exc:  # the recipe directory itself is unusable
        print(f"doit: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    for lines in invalid.values():
        for line in lines:
            print(line, file=sys.stderr)
    if invalid:
        print(
            f"doit: {len(invalid)} invalid recipe(s) not built, each fails as recipe:<id> "
            "(`zoomake validate` lists the errors)",
            file=sys.stderr,
        )
    return valid, invalid


def zoo() -> dict[str, dict]:
    """The valid recipes (an invalid one is reported and left out, see ``invalid_recipes``)."""
    return _load()[0]


def invalid_recipes() -> dict[str, list[str]]:
    """``{id: error lines}`` of the recipes that fail validation."""
    return _load()[1]


def finish_run(tasks: dict, events: dict, started: float | None = None) -> None:
    """End of every doit run (the reporter calls it): see ``pipelines.build.finish.finish_run``."""
    from pipelines.build.actions import resume_gc
    from pipelines.build.doit_loader import baseline
    from pipelines.build.finish import finish_run as finish

    resume_gc()
    finish(BUILD, zoo(), invalid_recipes(), tasks, events, DEP_FILE,
           code_fingerprint("report"), started=started, baseline=baseline())  # fmt: skip
