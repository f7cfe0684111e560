"""``doit --baseline DIR_OR_URL``: doit's dodo.py loader with zoomake's one build option.

doit has no way for a dodo file to add options to ``doit run``, but a loader's options are
accepted before and after the command (as ``-f dodo.py`` is). A zoo selects this loader in its
``pyproject.toml`` (this repository does)::

    [tool.doit]
    loader = "zoomake"
    [tool.doit.plugins.loader]
    zoomake = "pipelines.build.doit_loader:ZooLoader"

The option sets ``ZOOMAKE_BASELINE``, which the end-of-run report reads (``pipelines.report.baseline``);
``doit baseline=DIR`` (a doit command-line variable), the variable itself and
``zoomake build --baseline DIR`` do the same without the plugin.
"""

from __future__ import annotations

import os

from doit.cmd_base import DodoTaskLoader, ModuleTaskLoader

BASELINE_OPTION = {
    "name": "baseline",
    "long": "baseline",
    "type": str,
    "default": "",
    "help": "compare this build's golden outputs with a previous build directory or report "
    "(DIR or URL); the report shows the drift per target [default: $ZOOMAKE_BASELINE]",
}


class _Stamped:
    """A plain no-op ``doit`` served by the whole-zoo stamp (``pipelines.build.stamp``)
    without loading the tasks; every other command removes the stamp first."""

    def setup(self, opt_values):
        self._opt_values = opt_values  # doit merges DOIT_CONFIG into it before load_tasks
        super().setup(opt_values)

    def load_tasks(self, cmd, pos_args):
        from pipelines.build import stamp

        served = stamp.before_tasks(cmd, pos_args, self._opt_values)
        return served if served is not None else super().load_tasks(cmd, pos_args)


class ZooLoader(_Stamped, DodoTaskLoader):
    cmd_options = (*DodoTaskLoader.cmd_options, BASELINE_OPTION)

    def setup(self, opt_values):
        if opt_values.get("baseline"):
            os.environ["ZOOMAKE_BASELINE"] = opt_values["baseline"]
        super().setup(opt_values)


class ZooModuleLoader(_Stamped, ModuleTaskLoader):
    """``zoomake build``'s loader: the task creators of ``pipelines.build.tasks``."""


def baseline() -> str | None:
    """The baseline of this run: ``--baseline``/``ZOOMAKE_BASELINE``, else ``doit baseline=``."""
    from doit import get_var

    return os.environ.get("ZOOMAKE_BASELINE") or get_var("baseline") or None
