"""The reference side of verification: the recipe's preprocessing, transcribed from the README.

This is deliberately a second, plain implementation of README "The formula" and nothing else:
it reads the recipe's ``inputs.<name>.preprocess`` block as written and must not import
``converters.preprocess`` or share its helpers. The embedding (the code under test) and this
transcription are then two independent readings of the same text, so a recipe the embedding
misreads makes the reference differ and verify fail, instead of both sides agreeing on the
same mistake. Computed in float64, returned float32 NCHW (the original model's channel order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError


def _per_channel(where: str, key: str, value, channels: int) -> np.ndarray:
    """README: one number for all channels, or a list with one value per channel."""
    values = np.asarray(value, dtype=np.float64).reshape(-1)
    if values.size == 1:
        return np.full(channels, values[0])
    if values.size != channels:
        raise ZoomakeError(
            f"{where}: preprocess.{key} has {values.size} values for {channels} channels"
        )
    return values


def preprocess(
    x_deployed: np.ndarray, spec: dict, mean_image: np.ndarray | None = None, where: str = "input"
) -> np.ndarray:
    """``x_orig`` for the deployed input ``x_deployed`` (README "The formula", line by line)."""
    x = np.asarray(x_deployed).astype(np.float64)  # x = float32(x_d): exact for uint8 and f32
    if x.ndim != 4:
        raise ZoomakeError(f"{where}: the reference preprocessing takes 4-D inputs, got {x.shape}")
    if spec.get("layout") == "NHWC":
        x = np.transpose(x, (0, 3, 1, 2))
    if spec.get("reverse_channels") is True:
        x = x[:, ::-1, :, :]
    channels, height, width = x.shape[1:]
    if spec.get("mean_file") is not None:
        if mean_image is None:
            raise ZoomakeError(f"{where}: preprocess.mean_file was not fetched")
        x = x - _crop(where, np.asarray(mean_image, dtype=np.float64), spec, height, width)
    elif spec.get("mean") is not None:
        x = x - _per_channel(where, "mean", spec["mean"], channels)[None, :, None, None]
    if spec.get("std") is not None:
        x = x / _per_channel(where, "std", spec["std"], channels)[None, :, None, None]
    elif spec.get("scale") is not None:
        x = x * _per_channel(where, "scale", spec["scale"], channels)[None, :, None, None]
    return x.astype(np.float32)


def _crop(where: str, image: np.ndarray, spec: dict, height: int, width: int) -> np.ndarray:
    """README: the mean image cropped to H x W at the center, or at ``mean_file_offset``."""
    if image.ndim != 3 or image.shape[1] < height or image.shape[2] < width:
        raise ZoomakeError(
            f"{where}: mean image of shape {list(image.shape)} does not cover {height}x{width}"
        )
    offset = spec.get("mean_file_offset")
    if offset is None:
        top, left = (image.shape[1] - height) // 2, (image.shape[2] - width) // 2
    else:
        top, left = int(offset[0]), int(offset[1])
    crop = image[:, top : top + height, left : left + width]
    if crop.shape[1:] != (height, width):
        raise ZoomakeError(f"{where}: mean_file_offset {offset} runs off the mean image")
    return crop[None]


def load_mean_image(path: Path) -> np.ndarray:
    """A Caffe ``.binaryproto`` mean (a BlobProto) as ``(C, H, W)`` float64.

    Read here rather than with the converter's loader, for the same reason as above. The blob's
    shape is ``shape.dim`` or, in old files, ``num/channels/height/width``; leading 1s dropped.
    """
    from google.protobuf.message import DecodeError

    from converters.caffe.proto import caffe_pb2  # the wire schema only, no converter logic

    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(Path(path).read_bytes())
    except (OSError, DecodeError) as exc:
        raise ZoomakeError(f"{path}: cannot read the mean file ({exc})") from None
    if blob.HasField("shape"):
        dims = list(blob.shape.dim)
    else:
        dims = [blob.num, blob.channels, blob.height, blob.width]
    data = np.asarray(blob.double_data if len(blob.double_data) else blob.data, np.float64)
    while len(dims) > 3 and dims[0] == 1:
        dims.pop(0)
    if len(dims) != 3 or data.size != int(np.prod(dims)):
        raise ZoomakeError(f"{path}: mean file holds {data.size} values for shape {dims}")
    return data.reshape(dims)
