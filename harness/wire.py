"""Messages from workers to the supervisor: JSON plus raw tensor bytes, never pickle.

A candidate's process is untrusted. Unpickling anything it sends would let it run code in the
supervisor, so replies are a JSON header and a list of byte blobs decoded into fresh tensors with a
whitelist of dtypes. (Requests to workers come from the trusted side and may use pickle.)
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any


class WireError(Exception):
    """A worker sent bytes that are not a well-formed reply."""


_DTYPES = (
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
    "complex64", "complex128",
)  # fmt: skip
_TENSOR_KEY = "__tensor__"
_HEADER = struct.Struct("<Q")
MAX_HEADER_BYTES = 64 * 1024 * 1024


def encode(payload: Any) -> bytes:
    """Bytes for ``payload``: JSON-able values in which tensors may appear anywhere."""
    blobs: list[bytes] = []
    specs: list[dict[str, Any]] = []

    def convert(value: Any) -> Any:
        import torch

        if isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu").contiguous()
            raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
            specs.append({"dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape)})
            blobs.append(raw)
            return {_TENSOR_KEY: len(blobs) - 1}
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    if _has_tensor(payload):
        body = convert(payload)
    else:
        body = _finite(payload)
    header = json.dumps({"body": body, "tensors": specs, "sizes": [len(b) for b in blobs]}).encode()
    return _HEADER.pack(len(header)) + header + b"".join(blobs)


def _has_tensor(value: Any) -> bool:
    try:
        import torch
    except ImportError:
        return False
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_has_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_tensor(v) for v in value)
    return False


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def decode(data: bytes) -> Any:
    """The payload encoded in ``data``; WireError for anything malformed."""
    if len(data) < _HEADER.size:
        raise WireError("reply shorter than its header")
    (length,) = _HEADER.unpack_from(data)
    if length > min(MAX_HEADER_BYTES, len(data) - _HEADER.size):
        raise WireError("reply header length out of range")
    try:
        header = json.loads(data[_HEADER.size : _HEADER.size + length])
        body, specs, sizes = header["body"], header["tensors"], header["sizes"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WireError(f"reply header is not valid JSON: {exc}") from exc
    if not isinstance(specs, list) or not isinstance(sizes, list) or len(specs) != len(sizes):
        raise WireError("reply tensor table is inconsistent")
    if not specs:
        return body
    import torch

    offset = _HEADER.size + length
    tensors = []
    for spec, size in zip(specs, sizes, strict=True):
        dtype_name = spec.get("dtype") if isinstance(spec, dict) else None
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if dtype_name not in _DTYPES or not isinstance(shape, list) or not all(
            isinstance(d, int) and d >= 0 for d in shape
        ):
            raise WireError(f"reply tensor spec not allowed: {spec!r}")
        dtype = getattr(torch, dtype_name)
        numel = math.prod(shape)
        expected = numel * torch.empty((), dtype=dtype).element_size()
        if not isinstance(size, int) or size != expected or offset + size > len(data):
            raise WireError("reply tensor size does not match its shape")
        if numel == 0:
            tensors.append(torch.empty(shape, dtype=dtype))
        else:
            raw = bytearray(data[offset : offset + size])
            tensors.append(torch.frombuffer(raw, dtype=dtype).reshape(shape))
        offset += size

    def restore(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {_TENSOR_KEY}:
                index = value[_TENSOR_KEY]
                if not isinstance(index, int) or not 0 <= index < len(tensors):
                    raise WireError("reply refers to a tensor that is not there")
                return tensors[index]
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    return restore(body)
