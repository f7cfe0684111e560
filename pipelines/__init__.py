"""zoomake's build pipeline: recipes, fetch, doit tasks, verification, report, CLI."""

import os

# Single-threaded OpenBLAS for the build and the CLI: numpy's BLAS work here is tiny, and its
# worker threads were seen spinning forever in exec_blas next to OpenVINO's and onnxruntime's
# thread pools (a verify task stuck for 20 minutes). Must be set before numpy is first imported;
# every entry point (dodo.py, zoomake) imports this package before numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def version() -> str:
    """The installed distribution's version (``zoomake --version``, provenance records)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("zoomake")
    except PackageNotFoundError:  # run from a source tree that was never pip-installed
        return "0+unknown"
