"""`harness.sandbox.wire`: the reply format workers send the supervisor (JSON plus raw tensor bytes).

Random and mutated bytes are in tests/test_properties.py (decode fails only with WireError); here each
rule of the format has its own test.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sandbox import wire

DTYPES = sorted(wire.ITEMSIZE)

# --- helpers ----------------------------------------------------------------------------------------


def _tensor(dtype: str, shape: list[int], data: bytes) -> torch.Tensor:
    """A tensor of ``dtype`` and ``shape`` holding ``data`` (any bit patterns, NaN payloads included)."""
    torch_dtype = getattr(torch, dtype)
    if math.prod(shape) == 0:
        return torch.empty(shape, dtype=torch_dtype)
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    if torch_dtype is torch.bool:
        raw = raw % 2  # only 0 and 1 are booleans
    return raw.view(torch_dtype).reshape(shape)


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 3), max_size=3))  # [] is a scalar, a 0 a zero-size tensor
    size = math.prod(shape) * wire.ITEMSIZE[dtype]
    return _tensor(dtype, shape, draw(st.binary(min_size=size, max_size=size)))


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)  # fmt: skip
payloads = st.recursive(
    st.one_of(json_leaves, tensors()),
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _same(decoded: Any, original: Any) -> bool:
    """Whether ``decoded`` is ``original`` as the wire gives it back: tuples as lists, tensors bit for bit."""
    if isinstance(original, torch.Tensor):
        return (
            isinstance(decoded, torch.Tensor)
            and decoded.dtype == original.dtype
            and decoded.shape == original.shape
            and torch.equal(decoded.reshape(-1).view(torch.uint8), original.reshape(-1).view(torch.uint8))
        )
    if isinstance(original, dict):
        return (
            isinstance(decoded, dict)
            and list(decoded) == list(original)
            and all(_same(decoded[k], v) for k, v in original.items())
        )
    if isinstance(original, (list, tuple)):
        return (
            type(decoded) is list
            and len(decoded) == len(original)
            and all(_same(d, o) for d, o in zip(decoded, original, strict=True))
        )
    return type(decoded) is type(original) and decoded == original


def _forge(body: Any, specs: Any, sizes: Any, blobs: list[bytes]) -> bytes:
    """A reply laid out as `wire.encode` lays one out, from a header written by hand."""
    header = json.dumps({"body": body, "tensors": specs, "sizes": sizes}).encode()
    out = bytearray(struct.pack("<Q", len(header)) + header)
    out += bytes(-len(out) % 64)
    for blob in blobs:
        out += blob + bytes(-len(blob) % 64)
    return bytes(out)


SIX = torch.arange(6, dtype=torch.float32).reshape(2, 3)
GOOD: dict[str, Any] = {
    "body": {"x": {"__tensor__": 0}},
    "specs": [{"dtype": "float32", "shape": [2, 3]}],
    "sizes": [24],
    "blobs": [SIX.numpy().tobytes()],
}


def _forged(**changes: Any) -> bytes:
    return _forge(**{**GOOD, **changes})


# --- round trips ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(payload=payloads)
def test_nested_payloads_round_trip_with_every_tensor_bit_for_bit(payload: Any) -> None:
    assert _same(wire.decode(wire.encode(payload)), payload)
    assert _same(wire.decode(bytes(wire.encode(payload))), payload)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_whitelisted_dtype_round_trips_as_a_scalar_and_as_a_zero_size_tensor(dtype: str) -> None:
    scalar = _tensor(dtype, [], bytes(range(1, wire.ITEMSIZE[dtype] + 1)))
    empty = _tensor(dtype, [2, 0, 3], b"")
    decoded = wire.decode(wire.encode({"scalar": scalar, "empty": [empty]}))
    assert _same(decoded, {"scalar": scalar, "empty": [empty]})
    assert decoded["scalar"].dim() == 0 and decoded["empty"][0].shape == (2, 0, 3)


def test_a_strided_view_travels_as_its_values() -> None:
    view = torch.arange(12, dtype=torch.int32).reshape(3, 4).t()[1:]
    decoded = wire.decode(wire.encode([view]))[0]
    assert decoded.shape == (3, 3) and torch.equal(decoded, view)


def test_every_tensor_starts_on_a_64_byte_boundary() -> None:
    data = wire.encode([torch.ones(3, dtype=torch.int8), torch.ones(5, dtype=torch.float64)])
    tensors = wire.decode(data)
    base = torch.frombuffer(data, dtype=torch.uint8).data_ptr()
    assert [(t.data_ptr() - base) % 64 for t in tensors] == [0, 0]


def test_non_finite_floats_become_null() -> None:
    payload = {"nan": math.nan, "inf": [math.inf, -math.inf], "np": np.float32("nan"), "ok": 1.5}
    assert wire.decode(wire.encode(payload)) == {"nan": None, "inf": [None, None], "np": None, "ok": 1.5}


def test_numbers_of_other_types_become_plain_numbers_and_other_objects_text() -> None:
    decoded = wire.decode(wire.encode({"i": np.int64(3), "f": np.float64(0.25), "b": True, "o": Ellipsis}))
    assert decoded == {"i": 3, "f": 0.25, "b": True, "o": "Ellipsis"}
    assert type(decoded["i"]) is int and type(decoded["b"]) is bool


def test_a_tensor_of_a_dtype_off_the_whitelist_becomes_a_marker() -> None:
    decoded = wire.decode(wire.encode({"t": torch.zeros(2, dtype=torch.uint16)}))
    assert decoded == {"t": {"unsupported_dtype": "uint16"}}


def test_decode_body_leaves_tensors_as_references() -> None:
    data = wire.encode({"ok": True, "value": [torch.ones(2), torch.zeros(1)]})
    assert wire.decode_body(data) == {"ok": True, "value": [{"__tensor__": 0}, {"__tensor__": 1}]}


def test_tensor_bytes_counts_every_tensor_in_a_payload() -> None:
    payload = {"a": [torch.ones(10), (torch.ones(3, dtype=torch.float64),)], "b": 5, "c": "x"}
    assert wire.tensor_bytes(payload) == 40 + 24


# --- the tensor table: every check --------------------------------------------------------------------


def test_a_reply_forged_by_hand_decodes_when_it_follows_the_rules() -> None:
    """The base of the tests below: each changes one thing of this reply."""
    assert torch.equal(wire.decode(_forged())["x"], SIX)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"sizes": [24, 0]}, "tensor table is inconsistent"),
        ({"sizes": {"0": 24}}, "tensor table is inconsistent"),
        ({"sizes": [20]}, "size does not match its shape"),
        ({"specs": [{"dtype": "float32", "shape": [2, 2]}]}, "size does not match its shape"),
        ({"specs": [{"dtype": "float64", "shape": [2, 3]}]}, "size does not match its shape"),
        ({"sizes": [24.0]}, "size does not match its shape"),
        ({"specs": [{"dtype": "float128", "shape": [2, 3]}]}, "spec not allowed"),
        ({"specs": [{"dtype": "object", "shape": [2, 3]}]}, "spec not allowed"),
        ({"specs": [{"shape": [2, 3]}]}, "spec not allowed"),
        ({"specs": [{"dtype": "float32", "shape": [-2, -3]}]}, "spec not allowed"),
        ({"specs": [{"dtype": "float32", "shape": [2.0, 3]}]}, "spec not allowed"),
        ({"specs": [{"dtype": "float32", "shape": [True, 6]}]}, "spec not allowed"),
        ({"specs": [{"dtype": "float32", "shape": "2x3"}]}, "spec not allowed"),
        ({"specs": [["float32", [2, 3]]]}, "spec not allowed"),
        ({"body": {"x": {"__tensor__": 1}}}, "refers to a tensor that is not there"),
        ({"body": {"x": {"__tensor__": -1}}}, "refers to a tensor that is not there"),
        ({"body": {"x": {"__tensor__": "0"}}}, "refers to a tensor that is not there"),
        ({"body": [[{"__tensor__": 0, "also": 1}]]}, "refers to a tensor that is not there"),
        ({"blobs": [SIX.numpy().tobytes() + bytes(64)]}, "length does not match its tensor table"),
        ({"blobs": []}, "length does not match its tensor table"),
    ],
)
def test_a_reply_whose_tensor_table_breaks_a_rule_is_refused(changes: dict[str, Any], message: str) -> None:
    data = _forged(**changes)
    for read in (wire.decode, wire.decode_body):
        with pytest.raises(wire.WireError, match=message):
            read(data)


def test_a_tensor_of_more_than_the_allowed_dims_is_refused() -> None:
    def reply(dims: int) -> bytes:
        return _forged(specs=[{"dtype": "float32", "shape": [1] * (dims - 1) + [6]}])

    assert wire.decode(reply(wire.MAX_DIMS))["x"].dim() == wire.MAX_DIMS
    with pytest.raises(wire.WireError, match="spec not allowed"):
        wire.decode(reply(wire.MAX_DIMS + 1))


def test_a_body_nested_too_deeply_is_refused() -> None:
    body: Any = {"__tensor__": 0}
    for _ in range(150):
        body = [body]
    with pytest.raises(wire.WireError, match="nested too deeply"):
        wire.decode(_forged(body=body))


@pytest.mark.parametrize("cut", [0, 7, 8, 20, len(_forged()) - 64, len(_forged()) - 1])
def test_a_truncated_reply_is_refused(cut: int) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(_forged()[:cut])


def test_a_header_length_beyond_the_reply_is_refused() -> None:
    data = bytearray(_forged())
    struct.pack_into("<Q", data, 0, len(data))
    with pytest.raises(wire.WireError, match="header length out of range"):
        wire.decode(bytes(data))


def test_a_header_that_is_not_a_reply_header_is_refused() -> None:
    header = json.dumps({"body": 1, "tensors": []}).encode()  # no "sizes"
    data = struct.pack("<Q", len(header)) + header
    with pytest.raises(wire.WireError, match="not valid JSON"):
        wire.decode(data + bytes(-len(data) % 64))


# --- memory: shared or copied ---------------------------------------------------------------------------

SIXTEEN = torch.arange(16, dtype=torch.float32)  # 64 bytes: the last 64 bytes of its reply


def _overwrite_tensor(data: bytearray) -> None:
    data[-64:] = torch.full((16,), -1.0).numpy().tobytes()


def test_decoding_writable_memory_shares_it_by_default() -> None:
    data = wire.encode({"t": SIXTEEN})
    assert isinstance(data, bytearray)
    decoded = wire.decode(data)["t"]
    _overwrite_tensor(data)
    assert torch.equal(decoded, torch.full((16,), -1.0))


def test_decoding_with_copy_owns_its_tensors() -> None:
    data = wire.encode({"t": SIXTEEN})
    decoded = wire.decode(data, copy=True)["t"]
    _overwrite_tensor(data)
    assert torch.equal(decoded, SIXTEEN)


def test_decoding_read_only_memory_copies_by_default_and_shares_it_without_copy() -> None:
    data = wire.encode({"t": SIXTEEN})
    read_only = memoryview(data).toreadonly()
    copied = wire.decode(read_only)["t"]
    shared = wire.decode(read_only, copy=False)["t"]
    _overwrite_tensor(data)
    assert torch.equal(copied, SIXTEEN)
    assert torch.equal(shared, torch.full((16,), -1.0))
    copied.add_(1.0)  # a copy is the caller's own, writable
    read_only.release()


# --- shared reply buffers -----------------------------------------------------------------------------


def test_encode_into_writes_the_same_bytes_as_encode_and_returns_their_length() -> None:
    payload = {"ok": True, "seq": 4, "value": {"outputs": [SIXTEEN, torch.ones(3, dtype=torch.int64)]}}
    buffer = bytearray(4096)
    length = wire.encode_into(payload, buffer)
    assert bytes(buffer[:length]) == bytes(wire.encode(payload))
    assert _same(wire.decode(bytes(buffer[:length])), payload)


def test_encode_into_a_buffer_too_small_raises_too_large_and_writes_nothing() -> None:
    payload = {"outputs": [SIXTEEN]}
    buffer = bytearray(len(wire.encode(payload)) - 1)
    with pytest.raises(wire.TooLarge):
        wire.encode_into(payload, buffer)
    assert buffer == bytearray(len(buffer))
    assert wire.encode_into(payload, bytearray(len(buffer) + 1)) == len(buffer) + 1


@pytest.mark.parametrize("sizes", [[1], [4096], [3, 5, 7], [0, 1 << 16, 1]])
def test_reply_bytes_is_room_enough_for_a_reply_with_its_outputs(sizes: list[int]) -> None:
    outputs = [torch.ones(n, dtype=torch.int8) for n in sizes]
    reply = {"ok": True, "seq": 1 << 40, "value": {"outputs": outputs, "inputs_unchanged": None}}
    buffer = bytearray(wire.reply_bytes(sum(sizes), len(sizes)))
    assert wire.decode(buffer[: wire.encode_into(reply, buffer)])["value"]["outputs"][-1].numel() == sizes[-1]


def test_read_body_reads_a_reply_encoded_into_a_shared_mapping() -> None:
    mapping = mmap.mmap(-1, 1 << 16)
    payload = {"ok": True, "seq": 9, "value": {"outputs": [SIXTEEN]}}
    length = wire.encode_into(payload, mapping)
    assert wire.read_body(mapping, length) == {"ok": True, "seq": 9, "value": {"outputs": [{"__tensor__": 0}]}}
    mapping.close()


class _Scribbled:
    """A shared buffer whose untrusted writer overwrites every range right after it has been read."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = bytearray(data) + bytearray(size - len(data))
        self.reads: list[range] = []

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: slice) -> bytes:
        start, stop, _ = index.indices(len(self.data))
        chunk = bytes(self.data[start:stop])
        self.reads.append(range(start, stop))
        self.data[start:stop] = b"\xff" * (stop - start)
        return chunk


def test_read_body_reads_no_byte_of_the_shared_buffer_twice() -> None:
    payload = {"ok": True, "seq": 2, "value": {"outputs": [SIXTEEN], "note": "x" * 100}}
    data = bytes(wire.encode(payload))
    buffer = _Scribbled(data, len(data) + 4096)
    assert wire.read_body(buffer, len(data)) == wire.decode_body(data)
    read = [i for r in buffer.reads for i in r]
    assert len(read) == len(set(read))


def test_read_body_checks_the_header_against_the_length_it_was_given() -> None:
    data = bytes(wire.encode({"outputs": [SIXTEEN]}))
    buffer = bytearray(data) + bytearray(256)
    with pytest.raises(wire.WireError, match="reply length out of range"):
        wire.read_body(buffer, len(buffer) + 1)
    with pytest.raises(wire.WireError, match="reply length out of range"):
        wire.read_body(buffer, 7)
    with pytest.raises(wire.WireError, match="header length out of range"):
        wire.read_body(buffer, 16)
    with pytest.raises(wire.WireError, match="length does not match its tensor table"):
        wire.read_body(buffer, len(data) + 64)
    assert wire.read_body(buffer, len(data)) == {"outputs": [{"__tensor__": 0}]}
