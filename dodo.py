"""zoomake: build the model zoo in recipes/ into verified artifacts under build/.

Run `doit` to build everything, `doit list` to see the tasks, `doit clean` to remove built
outputs (the download cache survives). The task logic lives in pipelines/build/tasks.py.
"""

from pipelines.build.tasks import (  # noqa: F401 - doit collects task_* and DOIT_CONFIG by name
    DOIT_CONFIG,
    task_convert,
    task_docs,
    task_export,
    task_fetch,
    task_measure,
    task_optimize,
    task_recipe,
    task_reference,
    task_report,
    task_runtime,
    task_validate,
    task_verify,
)
