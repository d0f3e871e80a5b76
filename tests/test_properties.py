"""Property-based tests (hypothesis): whatever bytes arrive, the readers fail only in their documented way.

- case discovery and loading (``SIZES``, ``SHAPES``, ``BACKENDS`` of any value): CaseLoadError / BadInput
  (one line naming the file), never another error;
- `harness.sandbox.wire.decode` (what a worker sends the supervisor): WireError, never another error;
- `harness.evaluation.journal.read_journal` and `harness.artifacts.schemas.validate_file`: BadInput or a result.
"""

from __future__ import annotations

import itertools
import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.artifacts.schemas import validate_file
from harness.errors import BadInput, CaseLoadError
from harness.evaluation.journal import JOURNAL_FORMAT, read_journal
from harness.results import CaseResult
from harness.sandbox import wire
from harness.suite.cases import Case, case_from_file, discover, load_case

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_counter = itertools.count()

# --- strategies ------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
identifiers = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8)
python_literals = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 5),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=string.ascii_letters, max_size=5),
    ),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(string.ascii_lowercase, max_size=4), inner, max_size=3)
    | st.tuples(inner, inner),
    max_leaves=8,
)

# Bodies for get_inputs/get_init_inputs: valid lists, wrong types, and exceptions.
return_expressions = st.sampled_from(
    [
        "[torch.randn(n)]", "(torch.randn(n),)", "[]", "5", "None", "'text'", "{'a': 1}", "[1, 2]",
        "1 / 0", "undefined_name", "[torch.randn(-1)]", "iter([])",
    ]
)  # fmt: skip


_mostly = st.integers(0, 4).map(bool)  # True four times in five


@st.composite
def case_sources(draw: st.DrawFn, well_formed_knobs: bool = False) -> str:
    """A case file: a random mix of the contract's parts, some missing, some malformed."""
    lines = ["import torch", "import torch.nn as nn", f"n = {draw(st.integers(0, 8))}"]
    for name in draw(st.lists(identifiers, max_size=3)):
        lines.append(f"{name} = {draw(python_literals)!r}")
    if draw(st.booleans()):
        lines.append(f"SIZES = {draw(_well_formed_sizes if well_formed_knobs else _any_sizes)!r}")
    if draw(st.booleans()):
        lines.append(f"SHAPES = {draw(_any_shapes)!r}")
    for knob in ("ATOL", "RTOL"):
        if draw(st.booleans()):
            lines.append(f"{knob} = {draw(python_literals)!r}")
    if draw(st.booleans()):
        lines.append(f"BACKENDS = {draw(_well_formed_backends if well_formed_knobs else python_literals)!r}")
    if draw(_mostly):
        lines += ["class Model(nn.Module):", "    def forward(self, x):", "        return x"]
    for fn in ("get_inputs", "get_init_inputs", "get_flops"):
        if draw(_mostly):
            lines += [f"def {fn}():", f"    return {draw(return_expressions)}"]
    if draw(st.booleans()):
        lines.insert(
            draw(st.integers(0, len(lines))),
            draw(
                st.sampled_from(
                    ["def (:", "  indented", "import no_such_module_x", "raise SystemExit(3)", "'''"]
                )
            ),
        )  # noqa: E501
    return "\n".join(lines) + "\n"


_backend_names = st.sampled_from(["cpu", "gpu", "npu"])
_any_sizes = st.one_of(python_literals, st.dictionaries(_backend_names, python_literals, max_size=3))
# What cases.py handles today: SIZES a dict of backend -> dict of names, BACKENDS a non-empty sequence of
# names (see test_known_malformed_knobs_*: other shapes still escape as TypeError).
_well_formed_sizes = st.dictionaries(
    _backend_names,
    st.dictionaries(st.sampled_from(["n", "m", "missing"]), python_literals, max_size=2),
    max_size=3,
)
# SHAPES (harness.suite.shapes) is checked whole, so any value of it is a CaseLoadError or shapes.
_any_shapes = st.one_of(
    python_literals,
    st.dictionaries(
        st.one_of(_backend_names, st.text(string.ascii_lowercase, max_size=3)),
        st.one_of(python_literals, st.lists(_well_formed_sizes.map(lambda d: d.get("cpu", {})), max_size=3)),
        max_size=3,
    ),
)
_well_formed_backends = st.lists(st.sampled_from(["cpu", "gpu", "npu", "tpu"]), min_size=1, max_size=3).map(
    tuple
)


def _write_case(root: Path, content: bytes | str) -> Path:
    path = root / f"s{next(_counter)}" / "t1" / "case.py"
    path.parent.mkdir(parents=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


# --- cases ----------------------------------------------------------------------------------------


@SETTINGS
@given(content=st.one_of(st.binary(max_size=300), case_sources(well_formed_knobs=True).map(str.encode)))
def test_discovery_fails_only_with_bad_input(tmp_path: Path, content: bytes) -> None:
    path = _write_case(tmp_path, content)
    try:
        cases = discover(path.parent.parent)
        case = case_from_file(path)
    except BadInput as exc:
        assert "\n" not in str(exc).strip() and str(path) in str(exc)
        return
    assert [c.name for c in cases] == ["case"] and case.backends


@settings(max_examples=120, deadline=None)
@given(source=case_sources(well_formed_knobs=True), backend=st.sampled_from(["cpu", "gpu", "npu"]))
def test_loading_a_case_fails_only_with_case_load_error(tmp_path_factory: pytest.TempPathFactory, source: str,
                                                        backend: str) -> None:  # fmt: skip
    path = _write_case(tmp_path_factory.mktemp("load"), source)
    try:
        loaded = load_case(
            Case(name="case", tier="t1", path=path), backend, module_name=f"_prop_case_{next(_counter)}"
        )
        loaded.init_inputs()
        loaded.inputs()
    except CaseLoadError as exc:
        assert str(path) in str(exc)


@pytest.mark.parametrize(
    "knob",
    [
        "BACKENDS = None",
        "BACKENDS = (None, False)",
        "BACKENDS = 3",
        "SIZES = {'cpu': 5}",
        "SIZES = {'cpu': {1: 2}}",
    ],
)
def test_known_malformed_knobs_are_case_load_errors(tmp_path: Path, knob: str) -> None:
    """Malformed BACKENDS/SIZES shapes are load errors naming the file, not TypeErrors."""
    source = f"import torch\nimport torch.nn as nn\nn = 1\n{knob}\nclass Model(nn.Module):\n    pass\n" \
        "def get_inputs():\n    return []\ndef get_init_inputs():\n    return []\n"  # fmt: skip
    path = _write_case(tmp_path, source)
    with pytest.raises(BadInput):
        case_from_file(path)
        load_case(Case(name="case", tier="t1", path=path), "cpu", module_name=f"_prop_case_{next(_counter)}")


@settings(max_examples=60, deadline=None)
@given(source=case_sources())
def test_the_reference_worker_reports_any_broken_case_as_one_error_naming_it(
    tmp_path_factory: pytest.TempPathFactory, source: str
) -> None:
    """Whatever a case file does, `prepare` answers a value or a SessionError naming the file."""
    from harness.sandbox.reference import ReferenceSession
    from harness.sandbox.session import SessionError

    path = _write_case(tmp_path_factory.mktemp("ref"), source)
    session = ReferenceSession("cpu", "cpu")
    case = {"name": "case", "tier": "t1", "path": str(path)}
    try:
        meta = session.prepare(case, init_seed=1, trial_seeds=[2], timing_seed=3, fresh_seed=4)
    except SessionError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc).strip()
        return
    assert isinstance(meta["atol"], float)


# --- wire -----------------------------------------------------------------------------------------


def _valid_reply() -> bytes:
    import torch

    outputs = [torch.arange(6.0).reshape(2, 3), torch.ones(2, dtype=torch.bfloat16)]
    payload = {"ok": True, "seq": 3, "value": {"outputs": outputs, "inputs_unchanged": True}}
    return bytes(wire.encode(payload))


VALID = _valid_reply()


@SETTINGS
@given(data=st.binary(max_size=400))
def test_wire_decode_of_random_bytes_raises_only_wire_error(data: bytes) -> None:
    for decode in (wire.decode, wire.decode_body):
        try:
            decode(data)
        except wire.WireError:
            pass


@SETTINGS
@given(
    flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, len(VALID)),
    extra=st.binary(max_size=16),
)
def test_wire_decode_of_mutated_replies_raises_only_wire_error(
    flips: list[tuple[int, int]], cut: int, extra: bytes
) -> None:
    data = bytearray(VALID)
    for index, value in flips:
        data[index] = value
    mutated = bytes(data[:cut]) + extra
    for decode in (wire.decode, wire.decode_body):
        try:
            decode(mutated)
        except wire.WireError:
            pass


@SETTINGS
@given(body=json_values, specs=json_values, sizes=json_values, tail=st.binary(max_size=64))
def test_wire_decode_of_forged_headers_raises_only_wire_error(
    body: Any, specs: Any, sizes: Any, tail: bytes
) -> None:
    header = json.dumps({"body": body, "tensors": specs, "sizes": sizes}).encode()
    data = len(header).to_bytes(8, "little") + header + tail
    for decode in (wire.decode, wire.decode_body):
        try:
            decode(data)
        except wire.WireError:
            pass


@SETTINGS
@given(shape=st.lists(st.integers(0, 5), max_size=4), dtype=st.sampled_from(sorted(wire._ITEMSIZE)))
def test_wire_round_trips_tensors_bit_for_bit(shape: list[int], dtype: str) -> None:
    import torch

    tensor = torch.zeros(shape, dtype=torch.float64).uniform_(-3, 3).to(getattr(torch, dtype))
    decoded = wire.decode(wire.encode({"t": tensor}))["t"]
    assert decoded.dtype == tensor.dtype and decoded.shape == tensor.shape
    assert torch.equal(decoded.reshape(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8))


def test_wire_rejects_a_reply_that_claims_more_bytes_than_it_has() -> None:
    with pytest.raises(wire.WireError):
        wire.decode(VALID[:-1])
    with pytest.raises(wire.WireError):
        wire.decode(VALID + b"\0")


# --- journal --------------------------------------------------------------------------------------

_GOOD_LINE = json.dumps(CaseResult(name="a", tier="t1", backend="cpu", status="pass").to_json())
_HEADER_LINE = json.dumps(
    {"format": JOURNAL_FORMAT, "options": {"suite": "s", "solutions": "x"}, "run_seed": 1}
)


@st.composite
def journal_texts(draw: st.DrawFn) -> str:
    """A journal: a real header and result lines, some replaced by random JSON or cut short."""
    lines = [_HEADER_LINE] + [_GOOD_LINE] * draw(st.integers(0, 3))
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            lines[index] = json.dumps(draw(json_values))
        elif choice == 1:
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
        elif choice == 2:
            record = json.loads(_GOOD_LINE)
            record[draw(st.sampled_from(sorted(record)))] = draw(json_values)
            lines[index] = json.dumps(record)
        else:
            record = json.loads(_GOOD_LINE)
            record["timing"] = {"reference": draw(json_values), "solution": {"samples_ms": draw(json_values)}}
            lines[index] = json.dumps(record)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


@SETTINGS
@given(text=st.one_of(journal_texts(), st.text(max_size=300)))
def test_read_journal_returns_results_or_raises_bad_input(tmp_path: Path, text: str) -> None:
    path = tmp_path / f"journal{next(_counter)}.jsonl"
    path.write_text(text)
    try:
        state = read_journal(path)
    except BadInput as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(r, CaseResult) for r in state.results)


# --- validate -------------------------------------------------------------------------------------

_ARTIFACT = {
    "$schema": "https://kernel-harness.dev/schemas/v1/case-result.schema.json",
    "artifact_type": "case_result",
    "schema_version": "1.0.0",
}


@SETTINGS
@given(
    content=st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(
            st.sampled_from(["provenance", "environment", "result", "created_at", "x"]), json_values
        ).map(lambda extra: json.dumps({**_ARTIFACT, **extra}).encode()),
        st.integers(1, 500).map(lambda depth: b"[" * depth + b"]" * depth),
    )
)
def test_validate_file_returns_a_verdict_or_raises_bad_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / f"artifact{next(_counter)}.json"
    path.write_bytes(content)
    try:
        verdict = validate_file(path)
    except BadInput as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(verdict.errors, list)


def test_validate_file_of_deeply_nested_json_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(BadInput):
        validate_file(path)
