"""Tensors handed between the two workers where they lie: inputs staged once, outputs read in place.

The reference worker (trusted) draws each input set once. Instead of the candidate drawing the same
inputs again, the reference copies a set into a *staging region* that both workers map, and the
candidate runs on views of it. Afterwards the reference compares the region with its own private
copy, so a candidate that writes into its inputs is caught without a pre-call clone in the
candidate's process; the reference never times on the region, so such writes cannot change its
figures.

Two kinds of region:

- host: a memfd the supervisor creates and hands to both workers (the CPU backend);
- cuda: device memory the reference allocates with ``cuMemAlloc`` (never from torch's caching
  allocator, whose segments hold the reference's other tensors: an IPC handle maps a whole
  allocation) and exports with ``cuIpcGetMemHandle``; the candidate opens it.

A candidate's CUDA outputs travel the other way as IPC handles: the candidate exports the
allocation that holds each output, the reference opens it, checks the byte range against the
allocation's size, copies it device-to-device into its own memory, closes the handle and only then
looks at the copy, so a candidate that keeps writing cannot make two checks see different bytes.
The reference never uses torch's IPC reductions for this: their reference counter lives in a
shared-memory file named by the exporting process and is written at an offset it also names, which
an untrusted exporter must not control.

Layouts are JSON (plain lists and dicts): they travel through the supervisor.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

from harness.sandbox import wire

ALIGN = 256  # every staged tensor starts on this boundary (vector loads, any dtype)
_HANDLE_BYTES = 64
_ITEMSIZE = wire.ITEMSIZE


class ExchangeError(Exception):
    """A staging region or an exported tensor could not be used (reported, never a crash)."""


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# --- layouts ----------------------------------------------------------------------------------------


def plan_layout(values: list[Any]) -> list[dict[str, Any]] | None:
    """Where each of ``values`` goes in a region, or None when the set cannot be staged.

    Plain, dense, contiguous tensors of a whitelisted dtype are staged; Python scalars and None travel
    by value; anything else (views with odd strides, tensor subclasses, objects) keeps the old path,
    in which the candidate draws its own inputs from the seed.
    """
    import torch

    layout: list[dict[str, Any]] = []
    offset = 0
    for value in values:
        if type(value) is torch.Tensor:
            dtype = str(value.dtype).removeprefix("torch.")
            if dtype not in _ITEMSIZE or not value.is_contiguous() or value.requires_grad:
                return None
            nbytes = value.numel() * _ITEMSIZE[dtype]
            layout.append({"tensor": {"dtype": dtype, "shape": list(value.shape), "offset": offset}})
            offset += _aligned(nbytes)
        elif value is None or isinstance(value, (bool, int, float, str)):
            if isinstance(value, float) and not math.isfinite(value):
                return None
            layout.append({"value": value})
        else:
            return None
    return layout


def layout_bytes(layout: list[dict[str, Any]]) -> int:
    """Bytes a region needs for ``layout``."""
    end = 0
    for item in layout:
        spec = item.get("tensor")
        if spec:
            end = max(end, spec["offset"] + _aligned(_nbytes(spec)))
    return end


def _nbytes(spec: dict[str, Any]) -> int:
    return math.prod(spec["shape"]) * _ITEMSIZE[spec["dtype"]]


def check_layout(layout: Any, region_bytes: int) -> list[dict[str, Any]]:
    """``layout`` if every tensor it names fits a region of ``region_bytes`` bytes; ExchangeError if not."""
    if not isinstance(layout, list):
        raise ExchangeError("a staging layout must be a list")
    for item in layout:
        spec = item.get("tensor") if isinstance(item, dict) else None
        if spec is None:
            if not isinstance(item, dict) or "value" not in item:
                raise ExchangeError("a staging layout item is neither a tensor nor a value")
            continue
        dtype, shape, offset = spec.get("dtype"), spec.get("shape"), spec.get("offset")
        if dtype not in _ITEMSIZE or not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise ExchangeError(f"staged tensor spec not allowed: {str(spec)[:200]}")
        if type(offset) is not int or offset < 0 or offset % ALIGN or offset + _nbytes(spec) > region_bytes:
            raise ExchangeError("staged tensor lies outside its region")
    return layout


def write_into(region: Any, layout: list[dict[str, Any]], values: list[Any]) -> None:
    """Copy the tensors of ``values`` into ``region`` (a uint8 tensor) where ``layout`` puts them."""
    for item, value in zip(layout, values, strict=True):
        spec = item.get("tensor")
        if spec is not None and value.numel():
            n = _nbytes(spec)
            region[spec["offset"] : spec["offset"] + n].copy_(value.reshape(-1).view(_uint8()))


def views(region: Any, layout: list[dict[str, Any]]) -> list[Any]:
    """The staged values: tensors viewing ``region`` (a uint8 tensor), plain values as they are."""
    import torch

    out: list[Any] = []
    for item in layout:
        spec = item.get("tensor")
        if spec is None:
            out.append(item["value"])
            continue
        dtype = getattr(torch, spec["dtype"])
        n = _nbytes(spec)
        if n == 0:
            out.append(torch.empty(spec["shape"], dtype=dtype, device=region.device))
            continue
        out.append(region[spec["offset"] : spec["offset"] + n].view(dtype).view(spec["shape"]))
    return out


def unchanged(region: Any, layout: list[dict[str, Any]], values: list[Any]) -> bool:
    """Whether the region still holds exactly the bytes of ``values`` (NaNs included, bit for bit)."""
    for item, value in zip(layout, values, strict=True):
        spec = item.get("tensor")
        if spec is None or not value.numel():
            continue
        n = _nbytes(spec)
        if not _equal_bytes(region[spec["offset"] : spec["offset"] + n], value.reshape(-1).view(_uint8())):
            return False
    return True


def _equal_bytes(a: Any, b: Any) -> bool:
    import torch

    # 8-byte words where the length allows: one pass of 8x fewer elements than bytes
    if a.numel() % 8 == 0 and a.data_ptr() % 8 == 0 and b.data_ptr() % 8 == 0:
        return bool(torch.equal(a.view(torch.int64), b.view(torch.int64)))
    return bool(torch.equal(a, b))


def _uint8() -> Any:
    import torch

    return torch.uint8


# --- host regions (memfd, CPU backend) --------------------------------------------------------------


def host_region(mapping: Any) -> Any:
    """A writable uint8 tensor over a shared mapping (``mmap``)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.frombuffer(mapping, dtype=torch.uint8)


# --- CUDA regions and IPC (driver API through ctypes) -----------------------------------------------


class _IpcHandle(ctypes.Structure):
    _fields_ = [("reserved", ctypes.c_char * _HANDLE_BYTES)]


_CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS = 1
_DRIVER: Any = None


def _driver() -> Any:
    """libcuda (the driver the CUDA runtime itself uses); the calls below need no other library."""
    global _DRIVER
    if _DRIVER is None:
        try:
            lib = ctypes.CDLL("libcuda.so.1")
        except OSError as exc:
            raise ExchangeError(f"the CUDA driver library cannot be loaded: {exc}") from exc
        lib.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        lib.cuMemFree_v2.argtypes = [ctypes.c_uint64]
        lib.cuIpcGetMemHandle.argtypes = [ctypes.POINTER(_IpcHandle), ctypes.c_uint64]
        lib.cuIpcOpenMemHandle_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), _IpcHandle, ctypes.c_uint]
        lib.cuIpcCloseMemHandle.argtypes = [ctypes.c_uint64]
        lib.cuMemGetAddressRange_v2.argtypes = [
            ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_size_t), ctypes.c_uint64,
        ]  # fmt: skip
        _DRIVER = lib
    return _DRIVER


def _check(result: int, what: str) -> None:
    if result != 0:
        raise ExchangeError(f"{what} failed (CUDA driver error {result})")


def _current_context(device: str) -> None:
    """Make torch's primary context current on this thread (driver calls use the current context)."""
    import torch

    torch.cuda.set_device(torch.device(device))
    torch.cuda.current_stream()


class _CudaArray:
    """A raw device range presented to torch (``__cuda_array_interface__``); torch keeps this alive."""

    def __init__(self, ptr: int, nbytes: int) -> None:
        self.__cuda_array_interface__ = {
            "shape": (nbytes,), "typestr": "|u1", "data": (ptr, False), "version": 3, "strides": None,
        }  # fmt: skip


def _device_tensor(ptr: int, nbytes: int, device: str) -> Any:
    import torch

    return torch.as_tensor(_CudaArray(ptr, nbytes), device=torch.device(device))


def _address_range(ptr: int) -> tuple[int, int]:
    base, size = ctypes.c_uint64(), ctypes.c_size_t()
    _check(_driver().cuMemGetAddressRange_v2(ctypes.byref(base), ctypes.byref(size), ptr), "cuMemGetAddressRange")
    return int(base.value), int(size.value)


class CudaRegion:
    """Device memory of its own allocation (so an IPC handle to it exposes nothing else), owned here."""

    def __init__(self, nbytes: int, device: str) -> None:
        _current_context(device)
        self.device = device
        self.nbytes = max(ALIGN, _aligned(nbytes))
        ptr = ctypes.c_uint64()
        _check(_driver().cuMemAlloc_v2(ctypes.byref(ptr), self.nbytes), "cuMemAlloc")
        self.ptr = int(ptr.value)
        self.tensor = _device_tensor(self.ptr, self.nbytes, device)
        handle = _IpcHandle()
        try:
            _check(_driver().cuIpcGetMemHandle(ctypes.byref(handle), self.ptr), "cuIpcGetMemHandle")
        except ExchangeError:
            self.close()
            raise
        self.handle = bytes(handle).hex()

    def describe(self) -> dict[str, Any]:
        return {"kind": "cuda", "handle": self.handle, "bytes": self.nbytes}

    def close(self) -> None:
        if self.ptr:
            import torch

            torch.cuda.synchronize(self.device)
            self.tensor = None
            _driver().cuMemFree_v2(self.ptr)
            self.ptr = 0


class OpenedRegion:
    """Another process's exported allocation, mapped here until `close`."""

    def __init__(self, handle_hex: str, device: str) -> None:
        if not isinstance(handle_hex, str) or len(handle_hex) != 2 * _HANDLE_BYTES:
            raise ExchangeError("an IPC handle must be 64 bytes")
        try:
            raw = bytes.fromhex(handle_hex)
        except ValueError as exc:
            raise ExchangeError("an IPC handle must be hexadecimal") from exc
        _current_context(device)
        ptr = ctypes.c_uint64()
        _check(
            _driver().cuIpcOpenMemHandle_v2(
                ctypes.byref(ptr), _IpcHandle.from_buffer_copy(raw), _CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS
            ),
            "cuIpcOpenMemHandle",
        )
        self.ptr = int(ptr.value)
        self.device = device
        try:
            base, self.nbytes = _address_range(self.ptr)
        except ExchangeError:
            self.close()
            raise
        if base != self.ptr:
            self.close()
            raise ExchangeError("an opened IPC allocation does not start where it was mapped")

    def tensor(self, offset: int = 0, nbytes: int | None = None) -> Any:
        """A uint8 view of ``nbytes`` at ``offset``, after checking the range lies inside the allocation."""
        nbytes = self.nbytes - offset if nbytes is None else nbytes
        if type(offset) is not int or offset < 0 or nbytes < 0 or offset + nbytes > self.nbytes:
            raise ExchangeError("an exported tensor lies outside its allocation")
        return _device_tensor(self.ptr + offset, max(nbytes, 1), self.device)[:nbytes]

    def close(self) -> None:
        if self.ptr:
            _driver().cuIpcCloseMemHandle(self.ptr)
            self.ptr = 0


def export_cuda_tensor(tensor: Any) -> dict[str, Any]:
    """The IPC description of a (contiguous) CUDA tensor: handle of its allocation, offset, dtype, shape.

    Raises ExchangeError where the allocation cannot be exported (memory of another process, or the
    caching allocator's expandable segments); the caller then sends the bytes instead.
    """
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in _ITEMSIZE or not tensor.is_contiguous():
        raise ExchangeError(f"cannot export a {dtype} tensor that is not contiguous")
    ptr = int(tensor.data_ptr())
    base, _ = _address_range(ptr)  # a handle names a whole allocation, given by its base address
    handle = _IpcHandle()
    _check(_driver().cuIpcGetMemHandle(ctypes.byref(handle), base), "cuIpcGetMemHandle")
    return {
        "cuda_ipc": {
            "handle": bytes(handle).hex(),
            "offset": ptr - base,
            "dtype": dtype,
            "shape": list(tensor.shape),
        }
    }


def import_cuda_tensors(specs: list[dict[str, Any]], device: str) -> list[Any]:
    """Private copies of tensors another process exported (`export_cuda_tensor`), checked and copied
    device-to-device; every handle is closed again before this returns."""
    import torch

    opened: dict[str, OpenedRegion] = {}
    copies: list[Any] = []
    try:
        for spec in specs:
            dtype, shape, offset = spec.get("dtype"), spec.get("shape"), spec.get("offset")
            if (
                dtype not in _ITEMSIZE
                or not isinstance(shape, list)
                or len(shape) > wire.MAX_DIMS
                or not all(type(d) is int and d >= 0 for d in shape)
                or type(offset) is not int
            ):
                raise ExchangeError(f"exported tensor spec not allowed: {str(spec)[:200]}")
            torch_dtype = getattr(torch, dtype)
            nbytes = math.prod(shape) * _ITEMSIZE[dtype]
            if nbytes == 0:
                copies.append(torch.empty(shape, dtype=torch_dtype, device=device))
                continue
            if offset % _ITEMSIZE[dtype]:
                raise ExchangeError("an exported tensor is not aligned to its element size")
            handle = str(spec.get("handle"))
            region = opened.get(handle)
            if region is None:
                region = opened[handle] = OpenedRegion(handle, device)
            view = region.tensor(offset, nbytes)
            copies.append(view.clone().view(torch_dtype).view(shape))
        torch.cuda.synchronize(device)  # the copies are complete before the handles close
    finally:
        for region in opened.values():
            region.close()
    return copies
