"""The runtimes a model runs in: its deployment runtime (the candidate) or the one it came from
(the reference). ``base`` is what every runner is (``inputs``, ``outputs``, ``run``); one
module per runtime: ``onnxruntime``, ``openvino``, ``opencv`` (Caffe models in OpenCV DNN) and
``caffe`` (real Caffe through ``side``: a framework in its own Python, running the scripts of
``side_runners/``); ``choose`` opens the right runner for a format or source framework;
``setup_runtime`` creates and checks the side environments (``zoomake setup-runtime``,
``zoomake doctor``)."""
