"""Layer handler modules, one per family. Importing this package registers every handler.

The list is explicit on purpose (no directory scanning): what is registered is what is listed.
"""

from converters.caffe.layers import (
    activation,
    argmax,
    batchnorm,
    concat,
    conv,
    crop,
    detection_output,
    eltwise,
    identity,
    inner_product,
    inputs,
    lrn,
    mvn,
    normalize,
    permute,
    pooling,
    power,
    prior_box,
    reduction,
    relu,
    reshape,
    resize,
    roi_pooling,
    scale,
    softmax,
    tile,
)

ALL_MODULES = (
    activation, argmax, batchnorm, concat, conv, crop, detection_output, eltwise, identity,
    inner_product, inputs, lrn, mvn, normalize, permute, pooling, power, prior_box, reduction,
    relu, reshape, resize, roi_pooling, scale, softmax, tile,
)  # fmt: skip
