"""zoomake's build pipeline: recipes, fetch, doit tasks, verification, report, CLI."""

import os

# Single-threaded OpenBLAS for the build and the CLI: numpy's BLAS work here is tiny, and its
# worker threads were seen spinning forever in exec_blas next to OpenVINO's and onnxruntime's
# thread pools (a verify task stuck for 20 minutes). Must be set before numpy is first imported;
# every entry point (dodo.py, zoomake) imports this package before numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
