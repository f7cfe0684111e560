"""What the builds left behind: per task, is it current, and if it failed, why.

doit skips every task downstream of a failed one and stops at the first failure without
``--continue``, so the artifacts on disk alone cannot tell a fresh pass from yesterday's. The
run's reporter (``pipelines.report.zoo_reporter``) therefore records, at the end of every run, the
one-line error of each task that failed (``<build>/.status.json``, kept across runs until the
task succeeds) and which tasks are not current (this run's knowledge: skipped because an
upstream task failed, or not reached and out of date in doit's own database). The report
reads the verdict of each target from here before it looks at ``verify.json``.

A target's chain is ``fetch:<id> convert:<id> optimize:<id> export:<id>:<t> reference:<id>
measure:<id>:<t>``;
the ``verify`` gate's verdict is ``verify.json`` itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from converters.io import atomic_output

STATUS_NAME = ".status.json"
MODEL_STAGES = ("fetch", "convert", "optimize")  # one task per model ...
TARGET_STAGES = ("export", "measure")  # ... then one per target


def chain(model_id: str, target: str) -> list[str]:
    """The tasks a target's artifact and verify.json come from, upstream first (``reference``:
    the source model's outputs on the samples, read by every measure of the model)."""
    return [f"{s}:{model_id}" for s in MODEL_STAGES] + [
        f"export:{model_id}:{target}",
        f"reference:{model_id}",
        f"measure:{model_id}:{target}",
    ]


def stage_of(task_name: str) -> str:
    return task_name.split(":", 1)[0]


def downstream(task_name: str, targets: list[str]) -> list[str]:
    """The chain tasks after ``task_name`` of the same model (``targets``: its target names)."""
    stage, _, rest = task_name.partition(":")
    model_id, _, target = rest.partition(":")
    if stage == "reference":  # only the measures read it
        return [f"measure:{model_id}:{t}" for t in targets]
    order = MODEL_STAGES + TARGET_STAGES
    if stage not in order:
        return []
    later = order[order.index(stage) + 1 :]
    names = [f"{s}:{model_id}" for s in later if s in MODEL_STAGES]
    if stage == "fetch":
        names.append(f"reference:{model_id}")
    for t in [target] if target else targets:
        names += [f"{s}:{model_id}:{t}" for s in later if s in TARGET_STAGES]
    return names


@dataclass
class BuildState:
    """``failed``: task -> the one-line error of its last run; ``stale``: task -> why it is not
    current; ``invalid``: recipe id -> its validation errors (the recipe was not built)."""

    failed: dict[str, str] = field(default_factory=dict)
    stale: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, list[str]] = field(default_factory=dict)

    def verdict(self, model_id: str, target: str) -> tuple[str, str, str] | None:
        """``(status, stage, message)`` when the chain says failed / not built, else None
        (the chain is current: ``verify.json`` decides)."""
        tasks = chain(model_id, target)
        for task in tasks:
            if task in self.failed:
                return "failed", stage_of(task), f"{task} failed: {self.failed[task]}"
        for task in tasks:
            if task in self.stale:
                return "not_built", stage_of(task), f"{task} {self.stale[task]}"
        return None


def _status(build_dir) -> dict:
    try:
        data = json.loads((Path(build_dir) / STATUS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_failures(build_dir: str | os.PathLike) -> dict[str, str]:
    failed = _status(build_dir).get("failed")
    if not isinstance(failed, dict):
        return {}
    return {k: v for k, v in failed.items() if isinstance(k, str) and isinstance(v, str)}


def report_key(build_dir: str | os.PathLike) -> str | None:
    """The key the last written report was made with (see pipelines.build.finish.finish_run)."""
    return _status(build_dir).get("report_key")


def save_failures(build_dir: str | os.PathLike, failed: dict[str, str], key: str) -> None:
    data = {"failed": dict(sorted(failed.items())), "report_key": key}
    with atomic_output(Path(build_dir) / STATUS_NAME) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
