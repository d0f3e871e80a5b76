"""Messages from workers to the supervisor: JSON plus raw tensor bytes, never pickle.

A candidate's process is untrusted. Unpickling anything it sends would let it run code in the
supervisor, so replies are a JSON header and a list of byte blobs decoded into fresh tensors with a
whitelist of dtypes. (Requests to workers come from the trusted side and may use pickle.)

Layout: 8 bytes little-endian header length, the JSON header ``{"body", "tensors", "sizes"}``, then
each tensor's bytes, every one starting on a 64-byte boundary (so a tensor can be used where it lies).
A body refers to tensor ``i`` as ``{"__tensor__": i}``.

Large replies travel as a sealed memfd (`write_sealed`) instead of through the pipe: the kernel
guarantees that nobody, the candidate included, can change its bytes once sealed, so the reference
worker can compare the outputs where they lie instead of copying them twice through pipes.
"""

from __future__ import annotations

import json
import math
import mmap
import numbers
import os
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
_DTYPES = tuple(_ITEMSIZE)
_TENSOR_KEY = "__tensor__"
_HEADER = struct.Struct("<Q")
_ALIGN = 64
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_DIMS = 64
SEALED_MIN_BYTES = 1 << 20  # replies at least this large go through a sealed memfd where there is one
_SEALS_NEEDED = 0x0002 | 0x0004 | 0x0008  # F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE


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


def decode(data: Any) -> Any:
    """The payload encoded in ``data``; WireError for anything malformed.

    Tensors share ``data``'s memory when it is writable (a bytearray, a private mapping); otherwise
    (bytes) each is copied out.
    """
    body, table = _parse_header(*_split(data))
    if not table:
        return body
    import torch

    writable = not memoryview(data).readonly
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


# --- sealed memfds: large replies without copies through pipes ------------------------------------


def tensor_bytes(payload: Any) -> int:
    """How many bytes of tensor data ``payload`` holds (to choose between the pipe and a memfd)."""
    torch = _torch_if_loaded()
    if isinstance(payload, dict):
        return sum(tensor_bytes(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return sum(tensor_bytes(v) for v in payload)
    if torch is not None and isinstance(payload, torch.Tensor):
        return int(payload.numel() * payload.element_size())
    return 0


def write_sealed(payload: Any) -> tuple[int, int] | None:
    """``payload`` encoded into a new memfd sealed against any change; (fd, size), or None where
    memfds or seals are not available (then send it inline)."""
    import fcntl

    try:
        fd = os.memfd_create("harness-reply", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except (AttributeError, OSError):
        return None
    try:
        maps: list[mmap.mmap] = []

        def allocate(size: int) -> mmap.mmap:
            os.ftruncate(fd, size)
            maps.append(mmap.mmap(fd, size))
            return maps[-1]

        encode(payload, allocate)
        size = len(maps[0])
        maps[0].close()  # no writable mapping may be left, or F_SEAL_WRITE fails
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS_NEEDED | 0x0001)  # + F_SEAL_SEAL
        return fd, size
    except Exception:
        os.close(fd)
        raise


def check_sealed(fd: int, size: int) -> None:
    """WireError unless ``fd`` is a memfd of ``size`` bytes that nobody can change any more."""
    import fcntl
    import stat

    try:
        st = os.fstat(fd)
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError as exc:
        raise WireError(f"reply is not a sealed memfd ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode) or st.st_size != size or size < _HEADER.size:
        raise WireError("sealed reply has the wrong size or kind")
    if seals & _SEALS_NEEDED != _SEALS_NEEDED:
        raise WireError("reply memfd is not sealed against writes")


def map_sealed(fd: int, size: int) -> mmap.mmap:
    """A private, copy-on-write mapping of a sealed reply: tensors can be made on it without copying."""
    return mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)


def read_sealed_body(fd: int, size: int) -> Any:
    """The body of a sealed reply (tensors as references), reading only its header."""
    prefix = os.pread(fd, _HEADER.size, 0)
    if len(prefix) < _HEADER.size:
        raise WireError("reply shorter than its header")
    (length,) = _HEADER.unpack(prefix)
    if length > min(MAX_HEADER_BYTES, size - _HEADER.size):
        raise WireError("reply header length out of range")
    header = os.pread(fd, length, _HEADER.size)
    if len(header) != length:
        raise WireError("reply header cut short")
    return _parse_header(header, size)[0]
