"""Caffe models in real Caffe: pycaffe in its own environment (``pipelines.runtimes.side``), the
reference for Caffe sources when it is set up. The TEST-phase net it reports blobs of is read
with the same rule as OpenCV's (``pipelines.runtimes.opencv.deploy_net``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipelines.errors import ZoomakeError
from pipelines.runtimes.base import Runner, need_files
from pipelines.runtimes.opencv import caffe_blob_writers, caffe_inputs, deploy_net


class RealCaffeRunner(Runner):
    """The model in real Caffe (pycaffe in its own environment, ``pipelines.runtimes.side``).

    Any blob of the net can be asked for, including intermediate ones; an in-place layer's
    blob holds the value after the last layer that writes it, as in OpenCV's addressing.
    """

    runtime = "caffe"

    def __init__(self, prototxt: Path, caffemodel: Path | None):
        from pipelines.runtimes.side import SideModel, process

        need_files(prototxt, *([caffemodel] if caffemodel else []))
        files = {"prototxt": prototxt, **({"caffemodel": caffemodel} if caffemodel else {})}
        # The runner starts (pycaffe's import, ~0.3 s) and loads the net while this process
        # parses the prototxt in a thread of its own (protobuf's text parser is pure Python,
        # ~40 ms for a 100-layer net; the load waits on the pipe with the GIL released), so a
        # zoo's every model pays the longer of the two, not their sum. A runtime that is not
        # set up fails here, in one line; a prototxt neither can read fails with this parse's.
        process("caffe", wait=False)
        with ThreadPoolExecutor(1, thread_name_prefix="caffe-prototxt") as pool:
            # Caffe filters the TEST phase itself; the same rule gives the final blobs here.
            parsed = pool.submit(deploy_net, prototxt)
            try:
                self.model = SideModel("caffe", files)
            except ZoomakeError:
                parsed.result()  # its error first, as when the parse came before the load
                raise
            net = parsed.result()[0]
        self.writers, self.outputs = caffe_blob_writers(net)
        self.inputs = caffe_inputs(net)
        self.version = self.model.proc.info.get("version", "")
        self.build = self.model.proc.env.build

    def has_output(self, name: str) -> bool:
        return name in self.model.blobs

    def run(self, feeds, outputs=None):
        return self.model.run(feeds, list(outputs or self.outputs))
