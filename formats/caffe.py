"""Caffe: a source (prototxt + caffemodel, Caffe -> ONNX in ``converters/caffe``) and a float32
target (ONNX -> Caffe in ``converters/onnx2caffe``). Reference runner: real Caffe (side runtime)
or OpenCV DNN, by ``verify.reference``; artifact runner: OpenCV DNN (what deploys Caffe files)."""

from __future__ import annotations

from pathlib import Path

from formats import register
from formats.base import Format, Role, Source, Target


def to_onnx(files, inputs, outputs=None, opset=17, *, lazy=False):
    from converters.caffe.convert import convert_caffe
    from converters.errors import ConversionError

    if "prototxt" not in files:
        raise ConversionError("a Caffe source needs a prototxt")
    split = convert_caffe(
        files["prototxt"], files.get("caffemodel"), input_shapes=inputs, outputs=outputs,
        opset=opset,
    )  # fmt: skip
    return split.materialize(lazy=lazy)


def cli_files(given: dict, input_model: Path | None = None) -> dict:
    """The one-shot CLI's Caffe files: Model Optimizer's ``--input_model X.caffemodel`` (the
    network beside it unless ``--input_proto``), and mmconvert's ``-in``/``-iw`` given the
    other way round (a file's role is plain from what it is)."""
    import logging

    from pipelines.errors import ZoomakeError

    proto, weights = given.get("prototxt"), given.get("caffemodel")
    if input_model is not None:
        weights = weights or input_model
        proto = proto or input_model.with_suffix(".prototxt")
    if proto is not None and weights is not None and proto.suffix.lower() == ".caffemodel" \
            and weights.suffix.lower() == ".prototxt":  # fmt: skip
        logging.getLogger("zoomake.convert").info(
            "%s is the network and %s the weights (given the other way round)", weights, proto
        )
        proto, weights = weights, proto
    if proto is None and weights is not None:
        raise ZoomakeError(f"{weights}: a Caffe model needs its network too: --prototxt FILE")
    files = {"prototxt": proto} if proto is not None else {}
    if weights is not None:
        files["caffemodel"] = weights
    return files


def input_names(files) -> list[str]:
    from converters.caffe.convert import net_input_names

    return net_input_names(files["prototxt"])


def detection_cuts(files) -> dict:
    """The cuts of each DetectionOutput layer, by its top: ``keep_top_k``, ``nms_param.top_k``
    and ``confidence_threshold`` (float32, as the layer compares), those the layer sets."""
    from converters.caffe.prototxt import parse_prototxt

    cuts = {}
    for layer in parse_prototxt(files["prototxt"]).layer:
        if layer.type != "DetectionOutput" or not layer.top:
            continue
        p = layer.detection_output_param
        found = {}
        if p.HasField("keep_top_k") and p.keep_top_k >= 0:
            found["keep_top_k"] = p.keep_top_k
        if p.nms_param.HasField("top_k") and p.nms_param.top_k >= 0:
            found["top_k"] = p.nms_param.top_k
        if p.HasField("confidence_threshold"):
            found["confidence_threshold"] = p.confidence_threshold
        cuts[layer.top[0]] = found
    return cuts


def reference(files, outputs, choice="auto"):
    from pipelines.errors import ZoomakeError
    from pipelines.runtimes.caffe import RealCaffeRunner
    from pipelines.runtimes.choose import caffe_reference
    from pipelines.runtimes.opencv import OpenCvCaffeRunner

    for role in ("prototxt", "caffemodel"):
        if role not in files:
            raise ZoomakeError(f"the Caffe reference needs the source {role} (not fetched)")
    paths = Path(files["prototxt"]), Path(files["caffemodel"])
    if caffe_reference(choice) == "caffe":
        return RealCaffeRunner(*paths)
    return OpenCvCaffeRunner(*paths)


def from_onnx(model, out_dir: Path, options: dict) -> list[Path]:
    from converters.errors import ConversionError
    from converters.io import load_onnx
    from converters.onnx2caffe import onnx_to_caffe

    if options.get("precision", "fp32") != "fp32":
        raise ConversionError("Caffe targets are float32 only (precision: fp32)")
    proto, weights = out_dir / "model.prototxt", out_dir / "model.caffemodel"
    onnx_to_caffe(load_onnx(model) if isinstance(model, Path) else model, proto, weights)
    return [proto, weights]


def artifact_runner(out_dir: Path, prefer=None):
    from pipelines.runtimes.opencv import OpenCvCaffeRunner

    return OpenCvCaffeRunner(out_dir / "model.prototxt", out_dir / "model.caffemodel")


FORMAT = register(
    Format(
        name="caffe",
        title="Caffe (network prototxt + caffemodel weights)",
        short="Caffe",
        source=Source(
            roles=(
                Role(
                    "prototxt",
                    "Caffe deploy network definition (`.prototxt`).",
                    flags=("--prototxt", "--input_proto", "-in", "--inputNetwork"),
                    help="Caffe network definition (.prototxt)",
                    noun="the network",
                ),
                Role(
                    "caffemodel",
                    "Caffe trained weights (`.caffemodel`).",
                    flags=("--caffemodel", "-iw", "--inputWeight"),
                    help="Caffe weights (.caffemodel)",
                    noun="the weights",
                ),
            ),
            to_onnx=to_onnx,
            reference=reference,
            reference_runtime="real Caffe or OpenCV DNN",
            references=("auto", "caffe", "opencv"),
            layouts=("NCHW",),
            companions=("inputs.<name>.preprocess.mean_file (binaryproto)",),
            usage="--prototxt P [--caffemodel W]",
            model_suffix=".caffemodel",
            cli_files=cli_files,
            input_names=input_names,
            detection_cuts=detection_cuts,
        ),
        target=Target(
            files=("model.prototxt", "model.caffemodel"),
            precisions=("fp32",),
            from_onnx=from_onnx,
            runner=artifact_runner,
            suffix=".prototxt",
        ),
    )
)
