"""PyTorch as a target (ONNX -> generated nn.Module) and as a source (torch -> ONNX).

Library code only: the pipelines do not call it yet (the format registry comes later).
"""
