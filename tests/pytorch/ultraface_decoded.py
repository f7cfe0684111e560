"""A model factory for the PyTorch worker: UltraFace slim-320 as its authors run it for inference
(``is_test=True``: softmax scores and boxes decoded against the priors in ``forward``)."""


def create_slim_320_decoded():
    from vision.ssd.config import fd_config
    from vision.ssd.mb_tiny_fd import create_mb_tiny_fd

    if not len(fd_config.priors):  # the authors' scripts call this before building the net
        fd_config.define_img_size(320)
    return create_mb_tiny_fd(2, is_test=True, device="cpu")
