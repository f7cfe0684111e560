"""Input preprocessing baked into the model (recipe ``inputs.<name>.preprocess``).

Semantics (README, "Preprocessing semantics"): the deployed input ``x_d`` is converted to float32, moved to
NCHW if ``layout`` is NHWC, its channels reversed if ``reverse_channels``; then
``x_orig[c] = (x[c] - mean[c]) * scale[c]`` (or ``/ std[c]``) with ``c`` indexing the ORIGINAL
model's channels. ``mean`` may instead be a Caffe ``.binaryproto`` mean image, center-cropped to
the input (Caffe's test-time crop offset ``(H_mean - H) // 2``) or cropped at
``mean_file_offset: [y, x]``.

The graph gets explicit ONNX ops at the input (Cast, Transpose, Gather, Sub, Mul/Div), then as
much as is exact is folded into the first convolution, when it is the input's only consumer and
has constant weights and ``group == 1``:
  reversal:  conv(x[rev], W) == conv(x, W[:, rev])                 (a permutation, bit-exact)
  scale:     conv((x - m) * s, W) == conv(x - m, W * s[c])         (float64 product, one rounding)
  mean:      conv(x - m, W) == conv(x, W) - sum_{c,i,j} W[o,c,i,j] m[c]   ONLY without padding:
             a padded conv pads ``x - m`` with zeros, i.e. ``x`` with ``m``, so the border
             outputs differ (OpenVINO's old converter folded it anyway and was wrong there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converters.errors import ConversionError
from converters.lazy import tensor_array
from converters.names import unique_name

KEYS = ("mean", "mean_file", "mean_file_offset", "scale", "std", "reverse_channels", "layout",
        "dtype")  # fmt: skip
_DTYPES = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8}


# -- validation ----------------------------------------------------------------------------------
def _per_channel(where: str, key: str, value, channels: int) -> np.ndarray:
    """A float64 vector of ``channels`` values from one number or a list of one per channel."""
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1 or arr.size not in (1, channels):
        raise ConversionError(
            f"{where}: preprocess.{key} has {arr.size} values, expected 1 or {channels} "
            f"(one per channel of the original model)"
        )
    if not np.all(np.isfinite(arr)):
        raise ConversionError(f"{where}: preprocess.{key} must be finite, got {value}")
    return np.broadcast_to(arr, (channels,)).copy()


def _check_spec(where: str, spec: dict, channels: int) -> None:
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ConversionError(
            f"{where}: unknown preprocess key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}"
        )
    for a, b, what in (("scale", "std", "scale multiplies, std divides"),
                       ("mean", "mean_file", "a mean value or a mean image")):  # fmt: skip
        if spec.get(a) is not None and spec.get(b) is not None:
            raise ConversionError(
                f"{where}: preprocess gives both '{a}' and '{b}'; they are mutually exclusive "
                f"({what}): keep one"
            )
    if spec.get("layout", "NCHW") not in ("NCHW", "NHWC"):
        raise ConversionError(
            f"{where}: preprocess.layout must be NCHW or NHWC, got {spec['layout']!r}"
        )
    if spec.get("dtype", "float32") not in _DTYPES:
        raise ConversionError(
            f"{where}: preprocess.dtype must be float32 or uint8, got {spec['dtype']!r}"
        )
    if spec.get("reverse_channels") and channels != 3:
        raise ConversionError(
            f"{where}: preprocess.reverse_channels needs 3 channels "
            f"(RGB<->BGR), the input has {channels}"
        )
    for key in ("std", "scale"):
        if spec.get(key) is not None and np.any(_per_channel(where, key, spec[key], channels) == 0):
            raise ConversionError(f"{where}: preprocess.{key} must be non-zero, got {spec[key]}")
    offset = spec.get("mean_file_offset")
    if offset is not None and (
        not isinstance(offset, list | tuple)
        or len(offset) != 2
        or not all(isinstance(v, int | np.integer) and v >= 0 for v in offset)
    ):
        raise ConversionError(
            f"{where}: preprocess.mean_file_offset must be [y, x] (two integers >= 0), got {offset}"
        )


def _factors(where: str, spec: dict, channels: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(mean, multiplier, divide): per-channel float64 vectors, original channel order."""
    mean = _per_channel(where, "mean", spec.get("mean") or 0, channels)
    if spec.get("std") is not None:
        return mean, _per_channel(where, "std", spec["std"], channels), True
    scale = spec.get("scale")
    return mean, _per_channel(where, "scale", 1.0 if scale is None else scale, channels), False


# -- mean image ----------------------------------------------------------------------------------
def load_mean_file(path: str | Path) -> np.ndarray:
    """A Caffe ``.binaryproto`` (BlobProto) mean image as a float32 ``(C, H, W)`` array."""
    from google.protobuf.message import DecodeError

    from converters.caffe.proto import caffe_pb2

    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(Path(path).read_bytes())
    except (OSError, DecodeError) as exc:
        raise ConversionError(
            f"{path}: not a readable Caffe .binaryproto mean file ({exc})"
        ) from None
    dims = list(blob.shape.dim) or [blob.num, blob.channels, blob.height, blob.width]
    values = np.asarray(blob.data or blob.double_data, dtype=np.float32)
    while len(dims) > 3 and dims[0] == 1:
        dims = dims[1:]
    if len(dims) != 3 or values.size != int(np.prod(dims)) or values.size == 0:
        raise ConversionError(
            f"{path}: mean file must hold one (C, H, W) image, found shape {list(dims)} "
            f"with {values.size} values"
        )
    return values.reshape(dims)


def crop_mean(where: str, image: np.ndarray, spec: dict, chw: tuple[int, int, int]) -> np.ndarray:
    """The part of ``image`` (C, H', W') under the input (C, H, W): centered or at the offset."""
    c, h, w = chw
    mc, mh, mw = image.shape
    if mc != c or mh < h or mw < w:
        raise ConversionError(
            f"{where}: mean image is {mc}x{mh}x{mw} (CxHxW), expected {c} channels and at least "
            f"{h}x{w} to cover the input"
        )
    # Caffe's test-phase crop is centered: offset ((H' - H) // 2, (W' - W) // 2).
    y, x = spec.get("mean_file_offset") or ((mh - h) // 2, (mw - w) // 2)
    if not (0 <= y <= mh - h and 0 <= x <= mw - w):
        raise ConversionError(
            f"{where}: mean_file_offset [{y}, {x}] puts the {h}x{w} input "
            f"outside the {mh}x{mw} mean image"
        )
    return image[:, y : y + h, x : x + w]


# -- numpy reference -----------------------------------------------------------------------------
def preprocess_numpy(x_deployed: np.ndarray, spec: dict, mean_image=None) -> np.ndarray:
    """What the deployed model computes before the original first layer, in float64 numpy.

    ``mean_image`` is the (C, H', W') mean image when ``spec`` has ``mean_file`` (see
    ``load_mean_file``); it is cropped here. Returns float32 NCHW.
    """
    x = np.asarray(x_deployed).astype(np.float64)
    if x.ndim != 4:
        raise ConversionError(f"preprocess: expected a 4-D input, got shape {list(x.shape)}")
    if spec.get("layout", "NCHW") == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    channels = x.shape[1]
    _check_spec("preprocess", spec, channels)
    if spec.get("reverse_channels"):
        x = x[:, ::-1]
    mean, factor, divide = _factors("preprocess", spec, channels)
    if spec.get("mean_file") is not None:
        if mean_image is None and not isinstance(spec["mean_file"], str | Path):
            raise ConversionError("preprocess: mean_file given but no mean_image array")
        if mean_image is None:
            mean_image = load_mean_file(spec["mean_file"])
        x = x - crop_mean("preprocess", np.asarray(mean_image), spec, x.shape[1:])
    else:
        x = x - mean[:, None, None]
    x = x / factor[:, None, None] if divide else x * factor[:, None, None]
    return x.astype(np.float32)


# -- ONNX ----------------------------------------------------------------------------------------
class _Chain:
    """Appends single-output nodes after the input, with fresh names and float constants."""

    def __init__(self, graph, input_name: str):
        self.graph, self.prefix = graph, f"{input_name}/preprocess"
        self.cur, self.nodes = input_name, []
        self.used = {v.name for v in list(graph.input) + list(graph.output)}
        self.used |= {t.name for t in graph.initializer}
        self.used |= {o for n in graph.node for o in n.output} | {n.name for n in graph.node}

    def fresh(self, hint: str) -> str:
        return unique_name(hint, self.used)

    def const(self, hint: str, arr, dtype=np.float32) -> str:
        if not np.issubdtype(dtype, np.floating):
            t = numpy_helper.from_array(np.asarray(arr, dtype), self.fresh(f"{self.prefix}/{hint}"))
            self.graph.initializer.append(t)
            return t.name
        wide = np.asarray(arr, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            value = wide.astype(dtype)
        if not np.all(np.isfinite(value)):
            # e.g. mean 1e30 with scale 1e30: finite recipe values whose folded product is not
            # a float32; the model would compute inf/nan for every input.
            raise ConversionError(
                f"preprocess of '{self.prefix.removesuffix('/preprocess')}': {hint} "
                f"(max |x| {np.nanmax(np.abs(wide)):.6g}) does not fit in {value.dtype}; "
                f"check mean/scale/std"
            )
        t = numpy_helper.from_array(value, self.fresh(f"{self.prefix}/{hint}"))
        self.graph.initializer.append(t)
        return t.name

    def emit(self, op: str, hint: str, *extra: str, **attrs) -> None:
        out = self.fresh(f"{self.prefix}/{hint}")
        self.nodes.append(helper.make_node(op, [self.cur, *extra], [out], name=out, **attrs))
        self.cur = out


def embed_preprocessing(
    model: onnx.ModelProto,
    specs: dict[str, dict],
    files: dict | None = None,
    *,
    original_layouts: dict[str, str] | None = None,
    fold: bool = True,
) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs take the deployed form and are preprocessed in-graph.

    ``files["mean_file:<input>"]`` is the local path of that input's mean image.
    ``original_layouts[input]`` is the ORIGINAL model's input layout (recipe
    ``inputs.<name>.layout``, default NCHW; ONNX sources may be NHWC).
    ``fold=False`` keeps every preprocessing op explicit (tests compare both forms).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    layouts = original_layouts or {}
    for name, spec in specs.items():
        layout = layouts.get(name) or "NCHW"
        if layout not in ("NCHW", "NHWC"):
            raise ConversionError(f"input '{name}': layout must be NCHW or NHWC, got {layout!r}")
        _embed_one(out.graph, name, dict(spec or {}), files or {}, fold, layout == "NHWC")
    return out


def _mean_image(where: str, name: str, spec: dict, files: dict, chw) -> np.ndarray | None:
    if spec.get("mean_file") is None:
        return None
    path = files.get(f"mean_file:{name}")
    if path is None and isinstance(spec["mean_file"], str | Path):
        path = spec["mean_file"]  # a local path given directly (API use)
    if path is None:
        raise ConversionError(
            f"{where}: preprocess.mean_file has no local file (files['mean_file:{name}'])"
        )
    image = crop_mean(f"{where}: {path}", load_mean_file(path), spec, chw)
    return image.astype(np.float64)[None]


def _embed_one(graph, name: str, spec: dict, files: dict, fold: bool, orig_nhwc: bool) -> None:
    where = f"input '{name}'"
    vi = next((v for v in graph.input if v.name == name), None)
    if vi is None:
        raise ConversionError(
            f"preprocess names input '{name}', but the model's inputs are: "
            f"{', '.join(v.name for v in graph.input)}"
        )
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in vi.type.tensor_type.shape.dim]
    if len(dims) != 4 or min(dims) <= 0:
        raise ConversionError(
            f"{where}: preprocessing needs a static 4-D image input, the model declares {dims}"
        )
    if any(o.name == name for o in graph.output):
        raise ConversionError(f"{where}: is also a graph output; cannot preprocess it in place")
    n, c, h, w = [dims[i] for i in ((0, 3, 1, 2) if orig_nhwc else (0, 1, 2, 3))]
    _check_spec(where, spec, c)
    mean, factor, divide = _factors(where, spec, c)
    mean_map = _mean_image(where, name, spec, files, (c, h, w))
    consumers = [(node, i) for node in graph.node for i, v in enumerate(node.input) if v == name]
    conv = _foldable_conv(graph, consumers) if fold and not orig_nhwc else None
    deployed_nhwc = spec.get("layout", "NCHW") == "NHWC"
    # Channel ops run on the channel axis of whichever layout the tensor is in: channels-last
    # throughout when both layouts are NHWC (no Transpose pair), else NCHW between Transposes.
    ax = 3 if orig_nhwc and deployed_nhwc else 1
    per_channel = (1, 1, 1, c) if ax == 3 else (1, c, 1, 1)
    fold_mean = conv is not None and mean_map is None and not _has_padding(conv)

    # x: the deployed tensor after Cast/Transpose, x_orig[c] = x[rev[c]]. While the reversal is
    # pending (folded into the conv) constants go in deployed order: k_d[d] = k[rev[d]].
    rev = np.arange(c)[::-1] if spec.get("reverse_channels") else np.arange(c)
    chain = _Chain(graph, name)
    if spec.get("dtype", "float32") != "float32":
        chain.emit("Cast", "cast", to=TensorProto.FLOAT)
    if deployed_nhwc and ax == 1:
        chain.emit("Transpose", "to_nchw", perm=[0, 3, 1, 2])
    if spec.get("reverse_channels") and conv is None:
        chain.emit("Gather", "reverse", chain.const("reverse", rev, np.int64), axis=ax)
        rev = np.arange(c)
    if mean_map is not None:
        image = mean_map[:, rev]
        chain.emit("Sub", "sub_mean",
                   chain.const("mean", image.transpose(0, 2, 3, 1) if ax == 3 else image))  # fmt: skip
    elif np.any(mean != 0) and not fold_mean:
        chain.emit("Sub", "sub_mean", chain.const("mean", mean[rev].reshape(per_channel)))
    if np.any(factor != 1) and conv is None:
        op, hint = ("Div", "div_std") if divide else ("Mul", "mul_scale")
        chain.emit(op, hint, chain.const(hint, factor[rev].reshape(per_channel)))
    if orig_nhwc and ax == 1:
        chain.emit("Transpose", "to_nhwc", perm=[0, 2, 3, 1])
    if conv is not None:
        multiplier = 1.0 / factor if divide else factor
        _fold_into_conv(graph, conv, chain, rev, multiplier, mean if fold_mean else None)
    for node, i in consumers:
        node.input[i] = chain.cur
    for k, node in enumerate(chain.nodes):
        graph.node.insert(k, node)
    shape = [n, h, w, c] if deployed_nhwc else [n, c, h, w]
    vi.type.CopyFrom(helper.make_tensor_type_proto(_DTYPES[spec.get("dtype", "float32")], shape))


def _foldable_conv(graph, consumers):
    """The input's only consumer if it is a group-1 Conv with constant weights, else None."""
    if len(consumers) != 1 or consumers[0][1] != 0 or consumers[0][0].op_type != "Conv":
        return None
    conv = consumers[0][0]
    inits = {t.name for t in graph.initializer}
    group = next((a.i for a in conv.attribute if a.name == "group"), 1)
    if group != 1 or any(i not in inits for i in conv.input[1:] if i):
        return None
    return conv


def _has_padding(conv) -> bool:
    attrs = {a.name: a for a in conv.attribute}
    auto_pad = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
    if auto_pad == "VALID":
        return False
    if auto_pad != "NOTSET":  # SAME_UPPER / SAME_LOWER pad whenever the kernel is > 1
        return True
    return "pads" in attrs and any(attrs["pads"].ints)


def _fold_into_conv(graph, conv, chain: _Chain, rev, multiplier, mean) -> None:
    """W'[:, d] = W[:, rev[d]] * s[rev[d]];  b' = b - sum_{c,i,j} W[o,c,i,j] s[c] m[c]."""
    inits = {t.name: t for t in graph.initializer}
    old = [i for i in conv.input[1:] if i]
    scaled = tensor_array(inits[conv.input[1]]).astype(np.float64)
    if scaled.ndim != 4 or scaled.shape[1] != len(multiplier):
        # ONNX shape inference does not compare Conv's channels with its weights, so an input
        # shape with the wrong channel count gets this far.
        raise ConversionError(
            f"input '{chain.prefix.removesuffix('/preprocess')}' has {len(multiplier)} "
            f"channel(s), but the Conv "
            f"'{conv.name or conv.output[0]}' reading it has weights of shape {list(scaled.shape)}"
        )
    scaled *= multiplier[None, :, None, None]
    conv.input[1] = chain.const("conv_weights", scaled[:, rev])
    if mean is not None and np.any(mean):
        has_b = len(conv.input) > 2 and bool(conv.input[2])
        b = tensor_array(inits[conv.input[2]]).astype(np.float64) if has_b else 0.0
        b_name = chain.const("conv_bias", b - np.einsum("ocij,c->o", scaled, mean))
        if has_b:
            conv.input[2] = b_name
        else:
            conv.input.append(b_name)
    # The original weights stay only if another node shares them.
    used = {i for node in graph.node for i in node.input}
    keep = [t for t in graph.initializer if t.name not in old or t.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
