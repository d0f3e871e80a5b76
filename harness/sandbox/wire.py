"""Messages from workers to the supervisor: JSON plus raw tensor bytes, never pickle.

A candidate's process is untrusted. Unpickling anything it sends would let it run code in the
supervisor, so replies are a JSON header and a list of byte blobs decoded into fresh tensors with a
whitelist of dtypes. (Requests to workers come from the trusted side and may use pickle.)

Layout: 8 bytes little-endian header length, the JSON header ``{"body", "tensors", "sizes"}``, then
each tensor's bytes, every one starting on a 64-byte boundary (so a tensor can be used where it lies).
A body refers to tensor ``i`` as ``{"__tensor__": i}``.

Large replies are written into a buffer shared by the candidate worker, the supervisor and the
reference worker instead of going through two pipes: the supervisor reads the header from its own
copy, and the reference worker copies each chunk it compares before looking at it, so a candidate
that keeps writing into the buffer cannot make one check see other bytes than the next.
"""

from __future__ import annotations

import json
import math
import mmap
import numbers
import struct
from collections.abc import Callable
from typing import Any


class WireError(Exception):
    """A worker sent bytes that are not a well-formed reply."""


# Element size of every dtype a reply may carry (no torch needed to check a reply's tensor table).
_ITEMSIZE = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2, "int8": 1,
    "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16,
}  # fmt: skip
ITEMSIZE = _ITEMSIZE  # public: harness.sandbox.exchange stages and exports the same dtypes
_TENSOR_KEY = "__tensor__"
_HEADER = struct.Struct("<Q")
_ALIGN = 64
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_DIMS = 64
SHARED_MIN_BYTES = 1 << 20  # replies carrying at least this much tensor data use the shared buffer


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def encode(payload: Any, allocate: Callable[[int], Any] = bytearray) -> Any:
    """Bytes for ``payload`` (JSON-able values in which tensors may appear anywhere), in ``allocate(n)``.

    Each tensor's bytes are copied once, straight from the tensor (on any device) into the message.
    """
    tensors: list[Any] = []
    specs: list[dict[str, Any]] = []
    body = _convert(payload, tensors, specs)
    sizes = [spec.pop("nbytes") for spec in specs]
    header = json.dumps({"body": body, "tensors": specs, "sizes": sizes}, allow_nan=False).encode()
    start = _aligned(_HEADER.size + len(header))
    buffer = allocate(start + sum(_aligned(s) for s in sizes))
    with memoryview(buffer) as view:
        _HEADER.pack_into(view, 0, len(header))
        view[_HEADER.size : _HEADER.size + len(header)] = header
        offset = start
        for tensor, size in zip(tensors, sizes, strict=True):
            if size:
                _copy_into(view[offset : offset + size], tensor)
            offset += _aligned(size)
    return buffer


def _copy_into(target: memoryview, tensor: Any) -> None:
    import torch

    destination = torch.frombuffer(target, dtype=torch.uint8)
    destination.copy_(tensor.detach().contiguous().reshape(-1).view(torch.uint8))
    del destination


def _convert(value: Any, tensors: list[Any], specs: list[dict[str, Any]]) -> Any:
    """``value`` with tensors replaced by references; non-finite floats become null."""
    if isinstance(value, dict):
        return {str(k): _convert(v, tensors, specs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_convert(v, tensors, specs) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    torch = _torch_if_loaded()
    if torch is not None and isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype not in _ITEMSIZE:
            return {"unsupported_dtype": dtype}
        specs.append({"dtype": dtype, "shape": list(value.shape), "nbytes": value.numel() * _ITEMSIZE[dtype]})
        tensors.append(value)
        return {_TENSOR_KEY: len(tensors) - 1}
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _convert(float(value), tensors, specs)
    return str(value)


def _torch_if_loaded() -> Any:
    import sys

    return sys.modules.get("torch")


def _parse_header(header: bytes, total: int) -> tuple[Any, list[tuple[str, list[int], int]]]:
    """The body and the checked tensor table (dtype, shape, offset) of a reply ``total`` bytes long."""
    try:
        parsed = json.loads(header)
        body, specs, sizes = parsed["body"], parsed["tensors"], parsed["sizes"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise WireError(f"reply header is not valid JSON: {type(exc).__name__}") from exc
    if not isinstance(specs, list) or not isinstance(sizes, list) or len(specs) != len(sizes):
        raise WireError("reply tensor table is inconsistent")
    table: list[tuple[str, list[int], int]] = []
    offset = _aligned(_HEADER.size + len(header))
    for spec, size in zip(specs, sizes, strict=True):
        dtype = spec.get("dtype") if isinstance(spec, dict) else None
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if (
            not isinstance(dtype, str)
            or dtype not in _ITEMSIZE
            or not isinstance(shape, list)
            or len(shape) > MAX_DIMS
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise WireError(f"reply tensor spec not allowed: {str(spec)[:200]}")
        if type(size) is not int or size != math.prod(shape) * _ITEMSIZE[dtype]:
            raise WireError("reply tensor size does not match its shape")
        table.append((dtype, shape, offset))
        offset += _aligned(size)
    if offset != total:
        raise WireError("reply length does not match its tensor table")
    _check_references(body, len(table))
    return body, table


def _split(data: Any) -> tuple[bytes, int]:
    """The JSON header of a reply held in ``data`` and the reply's length."""
    total = len(data)
    if total < _HEADER.size:
        raise WireError("reply shorter than its header")
    (length,) = _HEADER.unpack_from(data)
    if length > min(MAX_HEADER_BYTES, total - _HEADER.size):
        raise WireError("reply header length out of range")
    return bytes(data[_HEADER.size : _HEADER.size + length]), total


def decode_body(data: Any) -> Any:
    """The payload of ``data`` with tensors left as ``{"__tensor__": i}`` references; checks the whole reply.

    For the supervisor, which only needs the body and forwards the bytes to the reference worker.
    """
    return _parse_header(*_split(data))[0]


def decode(data: Any, copy: bool | None = None) -> Any:
    """The payload encoded in ``data``; WireError for anything malformed.

    Tensors share ``data``'s memory when it is writable (a bytearray, a mapping) or ``copy`` is False;
    otherwise (bytes) each is copied out. A tensor on memory it does not own must not be written to.
    """
    body, table = _parse_header(*_split(data))
    if not table:
        return body
    import warnings

    import torch

    writable = not memoryview(data).readonly if copy is None else not copy
    tensors = []
    for dtype_name, shape, offset in table:
        dtype = getattr(torch, dtype_name)
        count = math.prod(shape)
        if count == 0:
            tensors.append(torch.empty(shape, dtype=dtype))
            continue
        size = count * _ITEMSIZE[dtype_name]
        source = data if writable else bytearray(memoryview(data)[offset : offset + size])
        start = offset if writable else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a read-only shared buffer: we only read it
            tensors.append(torch.frombuffer(source, dtype=dtype, count=count, offset=start).reshape(shape))
    return _restore(body, tensors)


def _check_references(value: Any, count: int, depth: int = 0) -> None:
    """WireError unless every tensor reference in ``value`` points into the table."""
    if depth > 100:
        raise WireError("reply nested too deeply")
    if isinstance(value, dict):
        if _TENSOR_KEY in value:
            index = value[_TENSOR_KEY]
            if len(value) != 1 or type(index) is not int or not 0 <= index < count:
                raise WireError("reply refers to a tensor that is not there")
            return
        for v in value.values():
            _check_references(v, count, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_references(v, count, depth + 1)


def _restore(value: Any, tensors: list[Any]) -> Any:
    if isinstance(value, dict):
        if _TENSOR_KEY in value:
            return tensors[value[_TENSOR_KEY]]
        return {k: _restore(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, tensors) for v in value]
    return value


# --- shared reply buffers: large replies without copies through pipes -----------------------------


def tensor_bytes(payload: Any) -> int:
    """How many bytes of tensor data ``payload`` holds (to choose between pipe and shared buffer)."""
    torch = _torch_if_loaded()
    if isinstance(payload, dict):
        return sum(tensor_bytes(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return sum(tensor_bytes(v) for v in payload)
    if torch is not None and isinstance(payload, torch.Tensor):
        return int(payload.numel() * payload.element_size())
    return 0


def reply_bytes(output_bytes: int, outputs: int) -> int:
    """A size of shared buffer that holds a reply with ``outputs`` tensors of ``output_bytes`` in all."""
    return output_bytes + _ALIGN * (outputs + 2) + HEADER_ALLOWANCE


HEADER_ALLOWANCE = 1 << 16


class TooLarge(Exception):
    """The reply does not fit the shared buffer (it is sent through the pipe instead)."""


def encode_into(payload: Any, buffer: Any) -> int:
    """Encode ``payload`` at the start of the writable ``buffer``; its length, or TooLarge if too big."""
    size = len(buffer)
    views: list[memoryview] = []

    def allocate(n: int) -> memoryview:
        if n > size:
            raise TooLarge(n)
        views.append(memoryview(buffer)[:n])
        return views[-1]

    try:
        encode(payload, allocate)
        return len(views[0])
    finally:
        for view in views:
            view.release()


def map_shared(fd: int, size: int, writable: bool) -> mmap.mmap:
    """A shared mapping of a reply buffer (writable for the candidate worker, read-only for the others)."""
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)


def read_body(buffer: Any, length: int) -> Any:
    """The body of the reply in the first ``length`` bytes of ``buffer`` (tensors as references).

    The header is copied out once and checked against ``length``: the buffer may be written by an
    untrusted process at any time, so nothing is read from it twice.
    """
    if not _HEADER.size <= length <= len(buffer):
        raise WireError("reply length out of range")
    (header_length,) = _HEADER.unpack(bytes(buffer[: _HEADER.size]))
    if header_length > min(MAX_HEADER_BYTES, length - _HEADER.size):
        raise WireError("reply header length out of range")
    header = bytes(buffer[_HEADER.size : _HEADER.size + header_length])
    return _parse_header(header, length)[0]
