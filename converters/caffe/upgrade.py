"""Upgrade V0 and V1 nets to the modern ``layer {}`` list, as Caffe does when it loads them.

Caffe (``src/caffe/util/upgrade_proto.cpp``) upgrades on load: V0 (``layers { layer { type:
"conv" ... } }``, 2014 model zoos) to V1 (``layers { type: CONVOLUTION ... }``), then V1 to
V2 (``layer { type: "Convolution" ... }``).  The converter does the same, so every handler
reads one format.  The field mapping below is the one Caffe applies (learned from that file,
written here as tables); what Caffe refuses (a V0 field on a layer type that has no place for
it, an unknown V0 type) is refused with one line naming the layer.

V0 quirk: a ``padding`` layer is not a layer of its own in V1; its ``pad`` moves into the
``conv``/``pool`` layer that reads its top, which then reads the padding layer's bottom.
"""

from __future__ import annotations

from converters.caffe.proto import caffe_pb2
from converters.errors import ConversionError

__all__ = ["V1_TYPES", "upgrade_layers"]

# V1LayerParameter.LayerType names -> modern type strings.
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}  # fmt: skip

# V0 type strings -> V1 enum names (every type Caffe's V0 upgrade knows).
_V0_TYPES = {
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION",
    "data": "DATA", "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN", "hdf5_data": "HDF5_DATA", "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL", "images": "IMAGE_DATA", "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT", "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS", "pool": "POOLING", "relu": "RELU",
    "sigmoid": "SIGMOID", "softmax": "SOFTMAX", "softmax_loss": "SOFTMAX_LOSS",
    "split": "SPLIT", "tanh": "TANH", "window_data": "WINDOW_DATA",
}  # fmt: skip

_DATA_TYPES = ("data", "hdf5_data", "images", "window_data")
_ANY = "*"

# V0 field -> {V0 type (or _ANY): destination path in the V1 layer}.
_V0_FIELDS: dict[str, dict[str, str]] = {
    "num_output": {"conv": "convolution_param.num_output",
                   "innerproduct": "inner_product_param.num_output"},
    "biasterm": {"conv": "convolution_param.bias_term",
                 "innerproduct": "inner_product_param.bias_term"},
    "weight_filler": {"conv": "convolution_param.weight_filler",
                      "innerproduct": "inner_product_param.weight_filler"},
    "bias_filler": {"conv": "convolution_param.bias_filler",
                    "innerproduct": "inner_product_param.bias_filler"},
    "pad": {"conv": "convolution_param.pad", "pool": "pooling_param.pad"},
    "kernelsize": {"conv": "convolution_param.kernel_size", "pool": "pooling_param.kernel_size"},
    "group": {"conv": "convolution_param.group"},
    "stride": {"conv": "convolution_param.stride", "pool": "pooling_param.stride"},
    "pool": {"pool": "pooling_param.pool"},  # MAX/AVE/STOCHASTIC: the same numbers
    "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
    "local_size": {"lrn": "lrn_param.local_size"},
    "alpha": {"lrn": "lrn_param.alpha"},
    "beta": {"lrn": "lrn_param.beta"},
    "k": {"lrn": "lrn_param.k"},
    "source": {"data": "data_param.source", "hdf5_data": "hdf5_data_param.source",
               "images": "image_data_param.source", "window_data": "window_data_param.source",
               "infogain_loss": "infogain_loss_param.source"},
    "scale": {_ANY: "transform_param.scale"},
    "meanfile": {_ANY: "transform_param.mean_file"},
    "cropsize": {_ANY: "transform_param.crop_size"},
    "mirror": {_ANY: "transform_param.mirror"},
    "batchsize": {"data": "data_param.batch_size", "hdf5_data": "hdf5_data_param.batch_size",
                  "images": "image_data_param.batch_size",
                  "window_data": "window_data_param.batch_size"},
    "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
    "shuffle_images": {"images": "image_data_param.shuffle"},
    "new_height": {"images": "image_data_param.new_height"},
    "new_width": {"images": "image_data_param.new_width"},
    "concat_dim": {"concat": "concat_param.concat_dim"},
    "det_fg_threshold": {"window_data": "window_data_param.fg_threshold"},
    "det_bg_threshold": {"window_data": "window_data_param.bg_threshold"},
    "det_fg_fraction": {"window_data": "window_data_param.fg_fraction"},
    "det_context_pad": {"window_data": "window_data_param.context_pad"},
    "det_crop_mode": {"window_data": "window_data_param.crop_mode"},
    "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
}  # fmt: skip
# Copied as they are; name and type are handled first.
_V0_PLAIN = ("blobs", "blobs_lr", "weight_decay")


def upgrade_layers(net, source: str) -> list[tuple[caffe_pb2.LayerParameter, tuple[str, int]]]:
    """The net's layers as V2 ``LayerParameter``s, each with its ``("layer"|"layers", index)``
    in the parsed net (to find the unknown fields recorded for it)."""
    if net.layer and net.layers:
        raise ConversionError(
            f"{source}: the net mixes 'layer' and legacy V1 'layers' lists; use one format"
        )
    if net.layer:
        return [(layer, ("layer", i)) for i, layer in enumerate(net.layer)]
    v1 = [(layer, i) for i, layer in enumerate(net.layers)]
    if any(layer.HasField("layer") for layer, _ in v1):
        v1 = _v0_to_v1(net, v1, source)
    return [(_v1_to_v2(layer, source), ("layers", i)) for layer, i in v1]


def _v0_error(source: str, conn, what: str) -> ConversionError:
    name = conn.layer.name or conn.name
    return ConversionError(
        f"{source}: V0 layer '{name}' ({conn.layer.type or 'no type'}): {what} "
        f"(Caffe's V0 upgrade refuses it too)"
    )


def _v0_to_v1(net, layers, source: str):
    """Merge padding layers into their readers, then upgrade each V0 layer to V1."""
    writer: dict[str, int] = dict.fromkeys(net.input, -1)  # blob -> index of its last writer
    kept = []
    for pos, (conn, index) in enumerate(layers):
        conn_type = conn.layer.type
        bottoms = list(conn.bottom)
        pad = None
        for j, blob in enumerate(bottoms):
            if blob not in writer:
                raise _v0_error(
                    source, conn, f"bottom '{blob}' is not produced by an earlier layer"
                )
            src = layers[writer[blob]][0] if writer[blob] >= 0 else None
            if src is not None and src.layer.type == "padding":
                if conn_type not in ("conv", "pool"):
                    raise _v0_error(source, conn, "a padding layer may only feed conv or pool")
                if len(bottoms) != 1 or len(src.bottom) != 1 or len(src.top) != 1:
                    raise _v0_error(source, conn, "padding needs one bottom and one top")
                bottoms[j] = src.bottom[0]
                pad = src.layer.pad
        for blob in conn.top:
            writer[blob] = pos
        if conn_type == "padding":
            continue
        upgraded = _v0_layer(conn, source)
        if pad is not None:
            path = "convolution_param" if conn_type == "conv" else "pooling_param"
            param = getattr(upgraded, path)
            if path == "convolution_param":
                del param.pad[:]
                param.pad.append(pad)
            else:
                param.pad = pad
        del upgraded.bottom[:]
        upgraded.bottom.extend(bottoms)
        kept.append((upgraded, index))
    return kept


def _v0_layer(conn, source: str):
    v0 = conn.layer
    out = caffe_pb2.V1LayerParameter()
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    out.include.extend(conn.include)
    out.exclude.extend(conn.exclude)
    out.name = v0.name if v0.HasField("name") else conn.name
    if v0.HasField("type"):
        if v0.type not in _V0_TYPES:
            raise _v0_error(
                source, conn, f"unknown V0 layer type; V0 types: {', '.join(_V0_TYPES)}"
            )
        out.type = caffe_pb2.V1LayerParameter.LayerType.Value(_V0_TYPES[v0.type])
    for field, value in v0.ListFields():
        name = field.name
        if name in ("name", "type"):
            continue
        if name in _V0_PLAIN:
            getattr(out, name).extend(value)
            continue
        targets = _V0_FIELDS.get(name)
        path = None if targets is None else targets.get(v0.type, targets.get(_ANY))
        if path is None:
            raise _v0_error(source, conn, f"V0 field '{name}' has no place in this layer type")
        _assign(out, path, value)
    return out


def _repeated(field) -> bool:
    # protobuf 7 dropped FieldDescriptor.label; older runtimes lack is_repeated.
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


def _assign(msg, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        msg = getattr(msg, part)
    field = msg.DESCRIPTOR.fields_by_name[last]
    if _repeated(field):
        getattr(msg, last).append(value)
    elif field.message_type is not None:
        getattr(msg, last).CopyFrom(value)
    else:
        setattr(msg, last, value)


def _v1_to_v2(v1, source: str) -> caffe_pb2.LayerParameter:
    out = caffe_pb2.LayerParameter()
    v2_fields = out.DESCRIPTOR.fields_by_name
    enum = v1.DESCRIPTOR.fields_by_name["type"].enum_type
    if v1.HasField("type"):
        enum_name = enum.values_by_number[v1.type].name
        if v1.type == 0:  # NONE
            raise ConversionError(f"{source}: V1 layer '{v1.name}' has type NONE")
        out.type = V1_TYPES.get(enum_name, enum_name)
    blobs_lr, decay, names = list(v1.blobs_lr), list(v1.weight_decay), list(v1.param)
    for field, value in v1.ListFields():
        name = field.name
        if name in ("type", "blobs_lr", "weight_decay", "param", "blob_share_mode"):
            continue
        if name not in v2_fields:  # `layer` (V0) was upgraded before this step
            continue
        dst = getattr(out, name)
        if _repeated(field):
            dst.extend(value)
        elif field.message_type is not None:
            dst.CopyFrom(value)
        else:
            setattr(out, name, value)
    # Per-blob training settings become ParamSpecs; nothing at deploy time reads them.
    for i in range(max(len(blobs_lr), len(decay), len(names))):
        spec = out.param.add()
        if i < len(names):
            spec.name = names[i]
        if i < len(blobs_lr):
            spec.lr_mult = blobs_lr[i]
        if i < len(decay):
            spec.decay_mult = decay[i]
    return out
