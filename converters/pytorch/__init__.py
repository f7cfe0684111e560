"""PyTorch as a target (ONNX -> generated nn.Module) and as a source (torch -> ONNX), the
functions ``formats/pytorch.py`` registers.

torch's CPU wheel runs its intra-op threads on its own libgomp, whose idle threads spin by
default. On a shared or oversubscribed machine (a ``doit -n 2`` build with 2 threads per
worker, or other jobs) a spinning pool burns the core the working thread needs: model.pt2 of
UltraFace RFB-320 measured a median run of 118-142 ms spinning against 19-21 ms with
``OMP_WAIT_POLICY=PASSIVE`` (2 threads each, load average ~7 on 2 cores, 20 runs;
``pipelines.runtimes.onnxruntime`` turns onnxruntime's spinning off for the same reason).
libgomp reads the variable once, when torch loads it, so it is set (unless the user set it)
here, before any module of this package imports torch; the torch worker processes inherit it.
The policy only changes how idle threads wait, never the kernels or the results.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
