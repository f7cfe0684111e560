"""The Caffe schema as a ``caffe_pb2`` module, built from ``caffe.proto`` at import time.

``from converters.caffe.proto import caffe_pb2`` gives what a protoc-generated module
would: message classes (``caffe_pb2.NetParameter()``), nested enum values on their
message (``caffe_pb2.PoolingParameter.MAX``, ``caffe_pb2.V1LayerParameter.CONVOLUTION``),
top-level enums and their values (``caffe_pb2.Phase``, ``caffe_pb2.TEST``) and
``caffe_pb2.DESCRIPTOR``.

The descriptor lives in a private ``DescriptorPool``: another package that registers its
own ``caffe`` protos in the default pool (a real Caffe install, OpenVINO's tools) cannot
clash with ours.  Field numbers and the fork-field policy are documented in caffe.proto.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.internal import enum_type_wrapper

from converters.caffe.proto._protoparse import ProtoSchemaError, parse_proto

__all__ = ["PROTO_PATH", "ProtoSchemaError", "caffe_pb2"]

PROTO_PATH = Path(__file__).with_name("caffe.proto")


def _build_module() -> types.ModuleType:
    file_proto = parse_proto(
        PROTO_PATH.read_text(encoding="utf-8"), str(PROTO_PATH), name=PROTO_PATH.name
    )
    pool = descriptor_pool.DescriptorPool()
    try:
        # AddSerializedFile exists with the same meaning on every runtime >= 4.25
        # (upb, cpp and pure python); Add(FileDescriptorProto) does not.
        file_desc = pool.AddSerializedFile(file_proto.SerializeToString())
    except (TypeError, ValueError) as exc:
        raise ProtoSchemaError(f"{PROTO_PATH}: rejected by the protobuf runtime: {exc}") from exc
    if not hasattr(file_desc, "message_types_by_name"):  # older runtimes return None
        file_desc = pool.FindFileByName(file_proto.name)

    module = types.ModuleType(f"{__name__}.caffe_pb2", f"Caffe messages built from {PROTO_PATH}")
    module.DESCRIPTOR = file_desc
    for name, desc in file_desc.message_types_by_name.items():
        setattr(module, name, message_factory.GetMessageClass(desc))
    for name, desc in file_desc.enum_types_by_name.items():
        setattr(module, name, enum_type_wrapper.EnumTypeWrapper(desc))
        for value in desc.values:
            setattr(module, value.name, value.number)
    return module


caffe_pb2 = _build_module()
# Also importable as a submodule: `import converters.caffe.proto.caffe_pb2`.
sys.modules[caffe_pb2.__name__] = caffe_pb2
