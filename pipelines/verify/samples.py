"""Verification inputs, in the form the DEPLOYED model takes them, and their reference form.

Value ranges (what a verification run feeds each input):
- an input the recipe preprocesses (any ``mean``/``scale``/``std``/``mean_file``/reversal, or a
  ``uint8`` dtype) takes images: uniform pixel values in [0, 255], integers for ``uint8``
  inputs and continuous floats for ``float32`` ones (resampled images are not integers);
- an input without preprocessing already receives the network's internal scale, which for
  image networks is roughly zero-centred and unit-sized: standard normal values.
Random sample ``i`` of a recipe with ``verify.seed: s`` is drawn from
``numpy.random.default_rng([s, i])``, inputs in the model's order, so every sample can be
regenerated on its own. Sample image files are decoded by OpenCV (BGR, as ``cv2.imread``
gives them: with ``reverse_channels: true`` that is what the deployed model expects), resized to
the input with bilinear interpolation, repeated over the batch and laid out as deployed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError
from pipelines.runtimes.base import Port

PIXELS = "uniform [0, 255]"
NORMAL = "standard normal"


@dataclass(frozen=True)
class DeployedInput:
    name: str
    shape: tuple[int, ...]  # as the deployed model takes it (NHWC when ``layout`` is NHWC)
    dtype: np.dtype  # what the artifact's runtime declares
    layout: str  # deployed layout
    spec: dict | None  # the recipe's preprocess block (None: the recipe does not list the input)
    original_layout: str  # layout of the source model's input
    values: str  # PIXELS or NORMAL
    integers: bool  # draw integers (uint8 deployed inputs)


def _is_identity(spec: dict) -> bool:
    if spec.get("mean_file") or spec.get("reverse_channels"):
        return False
    if spec.get("layout", "NCHW") != "NCHW" or spec.get("dtype", "float32") != "float32":
        return False
    factor = spec["std"] if spec.get("std") is not None else spec.get("scale") or 1
    return bool(np.all(np.asarray(spec.get("mean") or 0) == 0) and np.all(np.asarray(factor) == 1))


def _deployed_shape(name: str, recipe_input: dict | None, port: Port) -> tuple[int, ...]:
    if port.shape is not None:
        return port.shape
    if recipe_input is None or "shape" not in recipe_input:
        raise ZoomakeError(
            f"input '{name}' has no static shape in the artifact and none in the recipe "
            f"(add inputs.{name}.shape)"
        )
    shape = list(recipe_input["shape"])
    if recipe_input.get("layout", "NCHW") == "NHWC":
        shape = [shape[0], shape[3], shape[1], shape[2]]
    if (recipe_input.get("preprocess") or {}).get("layout", "NCHW") == "NHWC":
        shape = [shape[0], shape[2], shape[3], shape[1]]
    return tuple(shape)


def deployed_inputs(recipe: dict, ports: list[Port]) -> list[DeployedInput]:
    """Every input of the artifact with what the recipe says about it."""
    listed = recipe.get("inputs") or {}
    out = []
    for port in ports:
        rin = listed.get(port.name)
        spec = (rin or {}).get("preprocess") or ({} if rin is not None else None)
        uint8 = port.dtype == np.uint8 or (spec or {}).get("dtype") == "uint8"
        if not uint8 and port.dtype.kind != "f":
            raise ZoomakeError(
                f"input '{port.name}' is {port.dtype}: verification inputs are generated for "
                "float32 and uint8 image inputs only"
            )
        pixels = uint8 or (spec is not None and not _is_identity(spec))
        out.append(
            DeployedInput(
                port.name,
                _deployed_shape(port.name, rin, port),
                port.dtype,
                (spec or {}).get("layout", "NCHW"),
                spec,
                (rin or {}).get("layout", "NCHW"),
                PIXELS if pixels else NORMAL,
                uint8,
            )
        )
    return out


# The feeds of one sample, by what they are computed from (the inputs' names, shapes, dtypes,
# value ranges and layouts; the seed and index, or the image file's sha256): the reference and
# every target's measure of a model feed the same samples, and in a zoo build one process runs
# them all (a 1 MB image input costs ~3 ms to draw, ~7 ms to decode and resize). Callers get
# copies; the last _MEMO_SIZE samples are kept.
_MEMO: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
_MEMO_SIZE = 64
_MEMO_LOCK = threading.Lock()


def _remembered(key: tuple, compute) -> dict[str, np.ndarray]:
    with _MEMO_LOCK:
        feeds = _MEMO.get(key)
        if feeds is not None:
            _MEMO.move_to_end(key)
    if feeds is None:
        feeds = compute()
        for x in feeds.values():
            x.setflags(write=False)
        with _MEMO_LOCK:
            _MEMO[key] = feeds
            while len(_MEMO) > _MEMO_SIZE:
                _MEMO.popitem(last=False)
    return {name: x.copy() for name, x in feeds.items()}


def random_feeds(inputs: list[DeployedInput], seed: int, index: int) -> dict[str, np.ndarray]:
    """Random sample ``index``: one array per input, drawn from ``default_rng([seed, index])``."""
    key = tuple((i.name, i.shape, i.dtype.str, i.values, i.integers) for i in inputs)
    return _remembered(("random", key, seed, index), lambda: _random_feeds(inputs, seed, index))


def _random_feeds(inputs: list[DeployedInput], seed: int, index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, index])
    feeds = {}
    for inp in inputs:
        if inp.values == NORMAL:
            x = rng.standard_normal(inp.shape)
        elif inp.integers:
            x = rng.integers(0, 256, size=inp.shape)
        else:
            x = rng.uniform(0.0, 255.0, size=inp.shape)
        feeds[inp.name] = x.astype(inp.dtype)
    return feeds


def image_feeds(inputs: list[DeployedInput], path: Path) -> dict[str, np.ndarray]:
    """Sample image ``path`` fed to every input (each must have 1 or 3 channels)."""
    from pipelines.verify.digests import sha256_once

    try:
        content = sha256_once(path)
    except OSError:
        return _image_feeds(inputs, path)  # which says what is wrong with the file
    key = tuple((i.name, i.shape, i.dtype.str, i.layout) for i in inputs)
    return _remembered(("file", key, content), lambda: _image_feeds(inputs, path))


def _image_feeds(inputs: list[DeployedInput], path: Path) -> dict[str, np.ndarray]:
    import cv2

    feeds = {}
    for inp in inputs:
        n, c, h, w = _nchw(inp)
        if c not in (1, 3):
            raise ZoomakeError(
                f"{path}: sample images need inputs with 1 or 3 channels, "
                f"input '{inp.name}' has {c}"
            )
        flag = cv2.IMREAD_COLOR if c == 3 else cv2.IMREAD_GRAYSCALE
        image = cv2.imread(str(path), flag)
        if image is None:
            raise ZoomakeError(f"{path}: not an image OpenCV can decode")
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, c)
        batch = np.repeat(image[None], n, axis=0)  # NHWC
        if inp.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        feeds[inp.name] = np.ascontiguousarray(batch).astype(inp.dtype)
    return feeds


def _nchw(inp: DeployedInput) -> tuple[int, int, int, int]:
    n, a, b, c = inp.shape
    return (n, c, a, b) if inp.layout == "NHWC" else (n, a, b, c)


def reference_feeds(
    inputs: list[DeployedInput], feeds: dict[str, np.ndarray], mean_images: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """What the SOURCE model receives for ``feeds``: the recipe's preprocessing, computed by the
    reference's own transcription of the README formula (``pipelines.verify.reference_preprocess``),
    never by the code that embeds it in the artifact."""
    from pipelines.verify.reference_preprocess import preprocess

    out = {}
    for inp in inputs:
        x = feeds[inp.name]
        if inp.spec is None:
            out[inp.name] = x
            continue
        x = preprocess(x, inp.spec, mean_images.get(inp.name), where=f"input '{inp.name}'")
        if inp.original_layout == "NHWC":  # preprocess returns NCHW
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        out[inp.name] = x
    return out


def mean_images(sources: dict[str, Path]) -> dict[str, np.ndarray]:
    """The mean images of ``mean_file:<input>`` sources, by input name."""
    from pipelines.verify.reference_preprocess import load_mean_image

    return {
        role.split(":", 1)[1]: load_mean_image(path)
        for role, path in sources.items()
        if role.startswith("mean_file:")
    }
