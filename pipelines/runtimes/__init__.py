"""The runtimes a model runs in: its deployment runtime (the candidate) or the one it came from
(the reference). ``choose`` opens the right runner for a format or source framework; ``caffe``
runs Caffe models (OpenCV DNN, or real Caffe through ``side``: a framework in its own Python,
running the scripts of ``side_runners/``); ``setup_runtime`` creates and checks those
environments (``zoomake setup-runtime``, ``zoomake doctor``)."""
