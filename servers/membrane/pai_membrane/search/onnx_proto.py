"""The few ONNX messages the encoder's graph needs, written in protobuf's wire format.

ONNX models are protobuf messages (onnx/onnx.proto3 names the fields used here). Writing them
directly, rather than through the ``onnx`` package, spares its import (1.3 s measured here) and
several copies of the 90 MB of weights at the first embedding (the graph is built in about a tenth
of the time), and a dependency. Only what :func:`pai_membrane.search.onnx_bert.build_graph`
uses is here: nodes with int, float and ints attributes, float32/int32/int64 tensors, and
tensor inputs and outputs whose dimensions are named or fixed.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

__all__ = ["DATA_TYPES", "Message", "model", "node", "tensor", "value_info"]

# A message as the pieces of its encoding, joined once at the end: the weights are copied once.
Message = list[bytes | memoryview]

# TensorProto.DataType
DATA_TYPES = {"float32": 1, "int32": 6, "int64": 7}
_FLOAT, _INT, _INTS = 1, 2, 7  # AttributeProto.AttributeType


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s as two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: Message) -> Message:
    """A length-delimited field (a string, bytes, a message or a packed list)."""
    size = sum(len(piece) for piece in payload)
    return [_varint(number << 3 | 2) + _varint(size), *payload]


def _fields(number: int, messages: Sequence[Message]) -> Message:
    return [piece for message in messages for piece in _field(number, message)]


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _str(number: int, text: str) -> Message:
    return _field(number, [text.encode("utf-8")])


def _attribute(name: str, value: Any) -> Message:
    if isinstance(value, float):
        return [*_str(1, name), _varint(2 << 3 | 5) + struct.pack("<f", value), _int(20, _FLOAT)]
    if isinstance(value, int):
        return [*_str(1, name), _int(3, value), _int(20, _INT)]
    packed = b"".join(_varint(int(v)) for v in value)
    return [*_str(1, name), *_field(8, [packed]), _int(20, _INTS)]


def node(
    op: str, inputs: Sequence[str], outputs: Sequence[str], domain: str = "", **attrs: Any
) -> Message:
    """A NodeProto."""
    out: Message = [piece for name in inputs for piece in _str(1, name)]
    out += [piece for name in outputs for piece in _str(2, name)] + _str(4, op)
    out += _fields(5, [_attribute(k, v) for k, v in sorted(attrs.items())])
    return out + (_str(7, domain) if domain else [])


def tensor(name: str, array: Any) -> Message:
    """A TensorProto holding ``array`` (float32, int32 or int64) as raw little-endian data."""
    import numpy as np

    data = np.ascontiguousarray(array)
    data = data.astype(data.dtype.newbyteorder("<"), copy=False)
    dims = [_int(1, d) for d in data.shape]
    kind = DATA_TYPES[data.dtype.name]
    return [
        *dims,
        _int(2, kind),
        *_str(8, name),
        *_field(9, [data.view(np.uint8).reshape(-1).data]),
    ]


def value_info(name: str, dtype: str, dims: Sequence[int | str]) -> Message:
    """A ValueInfoProto for a tensor: each dimension a size or a name."""
    shape = _fields(1, [[_int(1, d)] if isinstance(d, int) else _str(2, d) for d in dims])
    tensor_type = [_int(1, DATA_TYPES[dtype]), *_field(2, shape)]
    return [*_str(1, name), *_field(2, _field(1, tensor_type))]


def model(
    nodes: Sequence[Message],
    initializers: Sequence[Message],
    inputs: Sequence[Message],
    outputs: Sequence[Message],
    opsets: dict[str, int],
    *,
    ir_version: int,
    name: str = "graph",
) -> bytes:
    """A serialised ModelProto with one graph."""
    graph = _fields(1, nodes) + _str(2, name) + _fields(5, initializers)
    graph += _fields(11, inputs) + _fields(12, outputs)
    imports = _fields(
        8, [(_str(1, domain) if domain else []) + [_int(2, v)] for domain, v in opsets.items()]
    )
    return b"".join([_int(1, ir_version), *imports, *_field(7, graph)])
