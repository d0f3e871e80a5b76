"""Static flags: what a reviewer looks for in a candidate's source, found without running it.

The source is parsed with ``ast`` and never imported, so scanning is safe and cheap enough for the
supervisor before the candidate is loaded. A flag does not fail a candidate (``--strict`` can turn
chosen flags into failures: ``strict_failures``); it points a reviewer at code that may be honest
(a build lock file, a host-side reduction) or may be how a candidate games the measurement: work on
other streams or threads that the timer might not see, a subprocess or network call, the harness or
the clock patched, results read from a file, or the reference's own torch operator called instead
of a kernel (``torch_fallback``).

Code inside C++/CUDA source strings (``load_inline``, ``cpp_extension``) is scanned with patterns
for the same things (streams, threads, processes, sockets, files, clocks, ATen operators).
Flags are best effort: a determined candidate can hide a call from any static scan (``getattr``
with a computed name, ``exec``); the dynamic measures (sandbox, tamper guard, supervisor clock) are
what enforce, these flags are what a reviewer reads first.

Long because the rules are tables (module and call names per flag, C++ patterns) next to the few
visitors that apply them; split, each half would be read only with the other.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Stable flag ids, with what each means (docs/correctness.md, "Static flags").
FLAG_IDS: dict[str, str] = {
    "stream": "creates or switches device streams (work the timer may not wait for)",
    "thread": "starts threads (work that may run outside the timed call)",
    "subprocess": "starts processes or runs shell commands",
    "ctypes": "loads native code through ctypes/cffi",
    "harness_import": "imports the harness (other than harness.solutions)",
    "timing_import": "imports clocks or timing/profiling tools",
    "network": "imports or uses networking",
    "file_access": "reads, writes or deletes files",
    "torch_fallback": "calls the torch operator(s) the reference uses: a fallback rather than a kernel",
    "unparsable": "the source does not parse",
}

STRICT_PREFIX = "static flags made failures by --strict"  # start of strict_failures()'s reason

# Helpers that solution files are meant to import (README, harness/solutions.py).
_ALLOWED_HARNESS = ("harness.solutions",)

_MODULE_FLAGS: dict[str, str] = {
    "threading": "thread", "_thread": "thread", "concurrent.futures": "thread", "multiprocessing.pool": "thread",
    "subprocess": "subprocess", "multiprocessing": "subprocess", "pty": "subprocess",
    "asyncio.subprocess": "subprocess",
    "ctypes": "ctypes", "cffi": "ctypes",
    "time": "timing_import", "timeit": "timing_import", "cProfile": "timing_import", "profile": "timing_import",
    "torch.profiler": "timing_import", "torch.autograd.profiler": "timing_import", "triton.testing": "timing_import",
    "socket": "network", "ssl": "network", "urllib": "network", "http": "network", "requests": "network",
    "httpx": "network", "aiohttp": "network", "ftplib": "network", "smtplib": "network", "xmlrpc": "network",
    "websocket": "network", "websockets": "network", "paramiko": "network",
    "shutil": "file_access",
}  # fmt: skip

_CALL_FLAGS: dict[str, str] = {
    "torch.cuda.Stream": "stream", "torch.cuda.stream": "stream", "torch.cuda.ExternalStream": "stream",
    "torch.cuda.set_stream": "stream", "torch.cuda.StreamContext": "stream", "torch.Stream": "stream",
    "torch.npu.Stream": "stream", "torch.npu.stream": "stream", "torch.npu.set_stream": "stream",
    "torch.cuda.streams.Stream": "stream", "cupy.cuda.Stream": "stream",
    "torch.cuda.Event": "timing_import", "torch.npu.Event": "timing_import", "torch.Event": "timing_import",
    "os.system": "subprocess", "os.popen": "subprocess", "os.fork": "subprocess", "os.forkpty": "subprocess",
    "os.posix_spawn": "subprocess", "os.posix_spawnp": "subprocess", "os.kill": "subprocess",
    "os.remove": "file_access", "os.unlink": "file_access", "os.rename": "file_access", "os.replace": "file_access",
    "os.rmdir": "file_access", "os.removedirs": "file_access", "os.mkdir": "file_access",
    "os.makedirs": "file_access", "os.chmod": "file_access", "os.truncate": "file_access", "os.open": "file_access",
    "os.symlink": "file_access", "os.link": "file_access",
    "tempfile.mkstemp": "file_access", "tempfile.mkdtemp": "file_access", "tempfile.NamedTemporaryFile": "file_access",
    "tempfile.TemporaryFile": "file_access", "tempfile.TemporaryDirectory": "file_access",
    "tempfile.SpooledTemporaryFile": "file_access",
    "torch.save": "file_access", "torch.load": "file_access", "numpy.save": "file_access", "numpy.load": "file_access",
    "numpy.savez": "file_access", "numpy.fromfile": "file_access", "pickle.load": "file_access",
    "pickle.dump": "file_access",
    "torch.ops.load_library": "ctypes",
}  # fmt: skip
_CALL_PREFIX_FLAGS = (("os.exec", "subprocess"), ("os.spawn", "subprocess"))
# Path-like methods that write or delete, whatever the receiver (``Path(...).write_text``).
_WRITE_METHODS = frozenset({"write_text", "write_bytes", "unlink", "mkdir", "touch", "rmdir", "symlink_to"})

# C++/CUDA source strings: (flag, pattern, what).
_NATIVE_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (flag, re.compile(pattern), what)
    for flag, pattern, what in (
        ("stream", r"\b(cudaStreamCreate\w*|getStreamFromPool|aclrtCreateStream\w*|cuStreamCreate\w*)\b",
         "creates a stream"),
        ("thread", r"\b(std::thread|std::async|pthread_create)\b", "starts threads"),
        ("subprocess", r"\b(system|popen|fork|execv\w*|execl\w*)\s*\(", "runs processes"),
        ("network", r"\b(socket|connect|getaddrinfo)\s*\(", "uses sockets"),
        ("file_access", r"\b(?:fopen|open)\s*\(|\bstd::(?:ofstream|ifstream|fstream)\b", "opens files"),
        ("timing_import", r"\b(std::chrono|clock_gettime|gettimeofday|cudaEventRecord|cudaEventElapsedTime|rdtsc)\b",
         "reads clocks"),
        ("ctypes", r"\bdlopen\s*\(", "loads libraries"),
    )
)  # fmt: skip
_NATIVE_MARKERS = ("#include", "__global__", "at::Tensor", "torch::Tensor", "PYBIND11_MODULE", "aclrt")
_ATEN_CALL = re.compile(r"\b(?:at|torch)::(?:native::)?([a-z_][a-z0-9_]*)\s*\(")

# Operators that are not a case's main work: allocation, views and shapes, dtype/device moves,
# copies, indexing and inspection. Calling them from a candidate is bookkeeping, not a fallback.
TRIVIAL_OPS = frozenset(
    """empty empty_like empty_strided zeros zeros_like ones ones_like full full_like arange linspace tensor
    as_tensor from_numpy new_empty new_zeros new_ones new_full new_tensor rand rand_like randn randn_like randint
    view view_as reshape reshape_as flatten unflatten squeeze unsqueeze expand expand_as contiguous transpose t permute
    movedim narrow select split chunk unbind stack cat concat concatenate index_select gather as_strided unfold
    size dim numel shape stride storage_offset data_ptr element_size is_contiguous item tolist numpy
    to type float double half bfloat16 int long bool cpu cuda npu detach clone copy_ fill_ zero_ requires_grad_
    get_device device dtype is_floating_point manual_seed no_grad inference_mode set_grad_enabled
    is_tensor is_complex broadcast_to broadcast_tensors result_type promote_types finfo iinfo
    max_pool_out_size pad""".split()
)
# Tensor methods that are operators (x.softmax(-1), y.sum()); any other method name (an extension's
# k.linear(...), a helper object's) is not taken for a torch operator.
TENSOR_METHOD_OPS = frozenset(
    """abs add addbmm addcdiv addcmul addmm addmv all amax amin aminmax any argmax argmin argsort baddbmm bmm
    ceil clamp clamp_max clamp_min clip cos cosh count_nonzero cummax cummin cumprod cumsum diff div divide dot
    eq erf erfc erfinv exp exp2 expm1 floor fmod ge gt index_add index_put kthvalue le lerp log log10 log1p log2
    log_softmax logaddexp logcumsumexp logical_and logical_not logical_or logit logsumexp lt masked_fill
    masked_scatter matmul max maximum mean median min minimum mm mode mul multiply mv nan_to_num nanmean nansum ne
    neg norm outer pow prod reciprocal relu remainder renorm round rsqrt scatter scatter_add scatter_reduce
    sigmoid sign sin sinh softmax sort sqrt square std sub subtract sum tan tanh topk trace tril triu var vdot
    where xlogy""".split()
)
# Interchangeable spellings of one piece of work, so F.linear in a candidate matches x @ W in a reference.
_OP_FAMILY: dict[str, str] = {
    **dict.fromkeys(("matmul", "mm", "bmm", "addmm", "addbmm", "baddbmm", "linear", "einsum", "mv", "dot",
                     "tensordot", "bilinear"), "matmul"),
    **dict.fromkeys(("conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d",
                     "conv_transpose3d", "_convolution"), "conv"),
    **dict.fromkeys(("scaled_dot_product_attention", "multi_head_attention_forward", "multihead_attention"),
                    "attention"),
    **dict.fromkeys(("layer_norm", "native_layer_norm"), "layer_norm"),
    **dict.fromkeys(("batch_norm", "batch_norm1d", "batch_norm2d", "batch_norm3d", "native_batch_norm"), "batch_norm"),
    **dict.fromkeys(("amax", "max"), "max"),
    **dict.fromkeys(("amin", "min"), "min"),
    **dict.fromkeys(("clamp", "clip", "hardtanh"), "clamp"),
    **dict.fromkeys(("cross_entropy", "nll_loss"), "cross_entropy"),
    **dict.fromkeys(("silu", "swish"), "silu"),
    **dict.fromkeys(("sigmoid", "expit"), "sigmoid"),
}  # fmt: skip
# nn module classes whose call is an operator (self.fc(x) with self.fc = nn.Linear(...)).
_MODULE_OPS: dict[str, str] = {
    "Linear": "linear", "Bilinear": "bilinear", "Conv1d": "conv1d", "Conv2d": "conv2d", "Conv3d": "conv3d",
    "ConvTranspose1d": "conv_transpose1d", "ConvTranspose2d": "conv_transpose2d",
    "ConvTranspose3d": "conv_transpose3d", "LayerNorm": "layer_norm", "RMSNorm": "rms_norm",
    "GroupNorm": "group_norm", "BatchNorm1d": "batch_norm", "BatchNorm2d": "batch_norm", "BatchNorm3d": "batch_norm",
    "InstanceNorm2d": "instance_norm", "MultiheadAttention": "multi_head_attention_forward",
    "Embedding": "embedding", "Softmax": "softmax", "LogSoftmax": "log_softmax", "ReLU": "relu", "GELU": "gelu",
    "SiLU": "silu", "Tanh": "tanh", "Sigmoid": "sigmoid", "LeakyReLU": "leaky_relu", "MaxPool2d": "max_pool2d",
    "AvgPool2d": "avg_pool2d", "AdaptiveAvgPool2d": "adaptive_avg_pool2d", "Dropout": "dropout",
    "TransformerEncoderLayer": "transformer_encoder_layer", "LSTM": "lstm", "GRU": "gru",
    "CrossEntropyLoss": "cross_entropy", "Upsample": "interpolate", "Flatten": "flatten", "Identity": "identity",
}  # fmt: skip
_TORCH_NAMESPACES = ("torch.nn.functional.", "torch.special.", "torch.linalg.", "torch.fft.", "torch.")
_NN = "torch.nn."
_JIT_DECORATORS = ("triton.jit", "triton.autotune", "triton.heuristics", "numba.jit", "numba.njit", "numba.cuda.jit")


@dataclass(frozen=True)
class Flag:
    """One finding: a stable id (a key of FLAG_IDS), a short message and the 1-based line (None: the file)."""

    id: str
    message: str
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "message": self.message, "line": self.line}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Flag:
        return cls(str(data["id"]), str(data.get("message", "")), data.get("line"))

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{self.id} ({where}{self.message})"


def scan_file(solution: Path, case: Path | None = None) -> list[Flag]:
    """Flags of the solution file; ``torch_fallback`` needs the case file (the reference's Model)."""
    source = solution.read_text(encoding="utf-8", errors="replace")
    reference = case.read_text(encoding="utf-8", errors="replace") if case is not None else None
    return scan_source(source, reference)


def scan_source(source: str, reference_source: str | None = None) -> list[Flag]:
    """Flags of a candidate's source, in line order, at most one per (id, line)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        return [Flag("unparsable", f"does not parse: {exc}", getattr(exc, "lineno", None))]
    names = _Names.of(tree)
    flags = list(_import_flags(tree))
    flags += _call_flags(tree, names)
    flags += _native_flags(tree)
    if reference_source is not None:
        flags += _fallback_flags(tree, names, reference_source)
    unique: dict[tuple[str, int | None], Flag] = {}
    for flag in flags:
        unique.setdefault((flag.id, flag.line), flag)
    return sorted(unique.values(), key=lambda f: (f.line or 0, f.id))


def parse_strict(text: str) -> set[str]:
    """Flag ids from ``--strict stream,thread`` (``all``: every id); ValueError naming unknown ones."""
    ids = {part.strip() for part in text.split(",") if part.strip()}
    if "all" in ids:
        return set(FLAG_IDS)
    unknown = sorted(ids - set(FLAG_IDS))
    if unknown:
        raise ValueError(f"unknown flag id(s) {', '.join(unknown)}; known: {', '.join(FLAG_IDS)}")
    return ids


def strict_failures(flags: Iterable[Flag], strict: set[str]) -> str | None:
    """The failure reason when any flag's id is in ``strict`` (``--strict``), else None."""
    hits = [f for f in flags if f.id in strict]
    if not hits:
        return None
    shown = "; ".join(str(f) for f in hits[:5]) + (f"; and {len(hits) - 5} more" if len(hits) > 5 else "")
    return f"{STRICT_PREFIX}: {shown}"


# --- names --------------------------------------------------------------------------------------


@dataclass
class _Names:
    """What the module's top-level names stand for: imported modules and objects, functions, classes."""

    aliases: dict[str, str]  # local name -> dotted origin ("F" -> "torch.nn.functional")
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]
    classes: dict[str, ast.ClassDef]
    assigned: dict[str, ast.expr]  # simple top-level assignments (ModelNew = reference_model(...))

    @classmethod
    def of(cls, tree: ast.Module) -> _Names:
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    # "import torch.nn" binds "torch"; "import torch.nn as nn" binds "nn".
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        assigned = {
            t.id: n.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        return cls(aliases, functions, classes, assigned)

    def qualify(self, node: ast.expr) -> str | None:
        """The dotted name an expression stands for (``F.softmax`` -> ``torch.nn.functional.softmax``)."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        head = self.aliases.get(node.id)
        if head is None:
            return None
        return ".".join([head, *reversed(parts)])


def _flag_for_module(module: str) -> str | None:
    if module == "harness" or module.startswith("harness."):
        return None if module.startswith(_ALLOWED_HARNESS) else "harness_import"
    for name, flag in _MODULE_FLAGS.items():
        if module == name or module.startswith(name + "."):
            return flag
    return None


def _import_flags(tree: ast.Module) -> Iterator[Flag]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [f"{node.module}.{a.name}" for a in node.names]  # "from harness import solutions" is fine
        else:
            continue
        for module in modules:
            flag = _flag_for_module(module)
            if flag:
                yield Flag(flag, f"imports {module}", node.lineno)
                break


def _call_flags(tree: ast.Module, names: _Names) -> Iterator[Flag]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = names.qualify(func)
        if (isinstance(func, ast.Name) and func.id == "__import__") or name == "importlib.import_module":
            module = _literal(node.args[0]) if node.args else None
            flag = _flag_for_module(module) if isinstance(module, str) else None
            if flag:
                yield Flag(flag, f"imports {module} dynamically", node.lineno)
        if isinstance(func, ast.Name) and func.id == "open" and "open" not in names.aliases:
            yield Flag("file_access", _open_message(node), node.lineno)
            continue
        if isinstance(func, ast.Attribute) and func.attr in _WRITE_METHODS and name is None:
            yield Flag("file_access", f"calls .{func.attr}()", node.lineno)
            continue
        if isinstance(func, ast.Attribute) and func.attr == "open" and name is None:
            yield Flag("file_access", f"calls .open() ({_mode_text(node, 0)})", node.lineno)
            continue
        if name is None:
            continue
        flag = _CALL_FLAGS.get(name) or next((f for p, f in _CALL_PREFIX_FLAGS if name.startswith(p)), None)
        if flag is None and name.startswith("shutil."):
            flag = "file_access"
        if flag:
            yield Flag(flag, f"calls {name}", node.lineno)


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _mode_text(call: ast.Call, position: int) -> str:
    mode: ast.expr | None = call.args[position] if len(call.args) > position else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    if mode is None:
        return "for reading"
    value = _literal(mode)
    if not isinstance(value, str):
        return "with a computed mode"
    return "for writing" if any(c in value for c in "wax+") else "for reading"


def _open_message(call: ast.Call) -> str:
    target = _literal(call.args[0]) if call.args else None
    what = repr(target) if isinstance(target, str) else "a file"
    return f"opens {what} {_mode_text(call, 1)}"


def _native_sources(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """String constants that look like C++/CUDA source, with their first line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 40:
            if any(marker in node.value for marker in _NATIVE_MARKERS):
                yield node.lineno, node.value


def _strip_comments(code: str) -> str:
    code = re.sub(r"/\*.*?\*/", " ", code, flags=re.S)
    return re.sub(r"//[^\n]*", " ", code)


def _native_flags(tree: ast.Module) -> Iterator[Flag]:
    for first, text in _native_sources(tree):
        code = _strip_comments(text)
        for flag, pattern, what in _NATIVE_PATTERNS:
            match = pattern.search(code)
            if match:
                line = first + code.count("\n", 0, match.start())
                yield Flag(flag, f"C++/CUDA source {what}: {match.group(0).strip()}", line)


# --- torch_fallback -------------------------------------------------------------------------------


def _normalize(op: str) -> str:
    op = op.rstrip("_") if op.endswith("_") and not op.startswith("_") else op  # relu_ -> relu
    return _OP_FAMILY.get(op, op)


def _is_jit(fn: ast.FunctionDef | ast.AsyncFunctionDef, names: _Names) -> bool:
    for deco in fn.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if (names.qualify(target) or "").startswith(_JIT_DECORATORS):
            return True
    return False


def _module_attrs(cls: ast.ClassDef, names: _Names) -> dict[str, str]:
    """self.<attr> -> operator for attributes assigned an nn module in any method (``self.fc = nn.Linear``)."""
    attrs: dict[str, str] = {}
    for node in ast.walk(cls):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        origin = names.qualify(node.value.func) or ""
        if not origin.startswith(_NN):
            continue
        op = _MODULE_OPS.get(origin.rsplit(".", 1)[-1])
        if op is None:
            continue
        for target in node.targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                attrs[target.attr] = op
    return attrs


def _opaque_attrs(cls: ast.ClassDef, names: _Names) -> set[str]:
    """self.<attr> bound to what a local function or a non-torch call returned (``self.kernels =
    _kernels()``, a compiled extension): its methods are the candidate's own, not tensor methods."""
    attrs: set[str] = set()
    for node in ast.walk(cls):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        origin = names.qualify(node.value.func) or ""
        if origin.startswith("torch."):
            continue
        for target in node.targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                attrs.add(target.attr)
    return attrs


def _opaque(receiver: ast.expr, names: _Names, opaque_attrs: set[str], local: set[str]) -> bool:
    """Whether a method's receiver is known not to be a tensor (an extension, a helper's result)."""
    if isinstance(receiver, ast.Name):
        if receiver.id in local:
            return True
        value = names.assigned.get(receiver.id)
        if receiver.id in names.functions or receiver.id in names.classes:
            return True
        return isinstance(value, ast.Call) and not (names.qualify(value.func) or "").startswith("torch.")
    if isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name) and receiver.value.id == "self":
        return receiver.attr in opaque_attrs
    if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name):
        return receiver.func.id in names.functions
    return False


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


@dataclass
class _ClassScope:
    """What calls inside one class's methods can mean: its methods, nn-module attributes, opaque ones."""

    cls: ast.ClassDef
    methods: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]
    modules: dict[str, str]
    opaque_attrs: set[str]

    @classmethod
    def of(cls, node: ast.ClassDef, names: _Names) -> _ClassScope:
        modules = _module_attrs(node, names)
        return cls(node, _methods(node), modules, _opaque_attrs(node, names) - set(modules))

    def submodule_classes(self, names: _Names) -> list[ast.ClassDef]:
        """Classes of this file that this class instantiates (``Block(...)`` in a ModuleList): their
        forward runs when it calls its submodules."""
        found = []
        for node in ast.walk(self.cls):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id != self.cls.name:
                target = names.classes.get(node.func.id)
                if target is not None and target not in found:
                    found.append(target)
        return found


def _forward_ops(tree: ast.Module, names: _Names, class_name: str) -> tuple[dict[str, int], str | None]:
    """Operators reachable from ``<class_name>.forward`` (op -> first line), and why the class *is* the
    reference when it is (``reference_model(...)``, a subclass of Model that keeps its forward)."""
    if class_name in names.assigned:
        value = names.assigned[class_name]
        origin = names.qualify(value.func) if isinstance(value, ast.Call) else names.qualify(value)
        if (isinstance(value, ast.Name) and value.id == "Model") or (origin or "").endswith(".reference_model"):
            return {}, f"{class_name} is the reference Model itself"
        if isinstance(value, ast.Name):  # ModelNew = MyKernelModel
            class_name = value.id
    cls = names.classes.get(class_name)
    if cls is None:
        return {}, None
    root = _ClassScope.of(cls, names)
    bases = [b.id for b in cls.bases if isinstance(b, ast.Name)]
    if "forward" not in root.methods:
        return {}, f"{class_name} subclasses {', '.join(bases)} without its own forward" if "Model" in bases else None
    ops: dict[str, int] = {}
    seen: set[int] = set()
    todo: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, _ClassScope | None]] = [(root.methods["forward"], root)]
    inherited: str | None = None
    while todo:
        fn, scope = todo.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        if scope is not None and fn.name == "forward":
            for sub in scope.submodule_classes(names):
                sub_scope = _ClassScope.of(sub, names)
                if "forward" in sub_scope.methods:
                    todo.append((sub_scope.methods["forward"], sub_scope))
        for op, line, call in _calls(fn, names, scope):
            if op is not None:
                ops.setdefault(op, line)
            elif call is not None:
                todo.append(call)
        if "Model" in bases and scope is root and _calls_super_forward(fn):
            inherited = f"{class_name}.forward calls Model.forward through super()"
    return ops, inherited


def _calls_super_forward(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "forward":
            inner = node.func.value
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "super":
                return True
    return False


_Callee = tuple[ast.FunctionDef | ast.AsyncFunctionDef, "_ClassScope | None"]


def _calls(
    fn: ast.FunctionDef | ast.AsyncFunctionDef, names: _Names, scope: _ClassScope | None
) -> Iterator[tuple[str | None, int, _Callee | None]]:
    """(operator, line, None) for each torch operator ``fn`` uses; (None, line, callee) for each
    function or method of this file it calls (Triton/Numba kernels are not followed: they are kernels)."""
    modules = scope.modules if scope else {}
    methods = scope.methods if scope else {}
    opaque_attrs = scope.opaque_attrs if scope else set()
    local: set[str] = set()  # local names bound to opaque objects (k = self.kernels)
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and _opaque(node.value, names, opaque_attrs, local):
            local.update(t.id for t in node.targets if isinstance(t, ast.Name))
    for node in ast.walk(fn):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            yield "matmul", node.lineno, None
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            target = names.functions.get(func.id)
            if target is not None and not _is_jit(target, names):
                yield None, node.lineno, (target, None)
            continue
        if not isinstance(func, ast.Attribute):
            continue
        if isinstance(func.value, ast.Name) and func.value.id == "self":
            if func.attr in modules:
                yield _normalize(modules[func.attr]), node.lineno, None
            elif func.attr in methods and not _is_jit(methods[func.attr], names):
                yield None, node.lineno, (methods[func.attr], scope)
            continue
        origin = names.qualify(func)
        if origin is not None:
            for prefix in _TORCH_NAMESPACES:
                if origin.startswith(prefix) and "." not in origin[len(prefix) :]:
                    yield _normalize(origin[len(prefix) :]), node.lineno, None
                    break
            continue
        method = func.attr[:-1] if func.attr.endswith("_") and not func.attr.startswith("_") else func.attr
        if method in TENSOR_METHOD_OPS and not _opaque(func.value, names, opaque_attrs, local):
            yield _normalize(method), node.lineno, None


def _native_ops(tree: ast.Module) -> dict[str, int]:
    """ATen operators called from C++ sources (``at::softmax(``, ``torch::matmul(``)."""
    ops: dict[str, int] = {}
    for first, text in _native_sources(tree):
        code = _strip_comments(text)
        for match in _ATEN_CALL.finditer(code):
            ops.setdefault(_normalize(match.group(1)), first + code.count("\n", 0, match.start()))
    return ops


def _fallback_flags(tree: ast.Module, names: _Names, reference_source: str) -> list[Flag]:
    try:
        ref_tree = ast.parse(reference_source)
    except (SyntaxError, ValueError):
        return []
    ref_ops, _ = _forward_ops(ref_tree, _Names.of(ref_tree), "Model")
    # A reference made only of "trivial" operators (a cast is one .to()) has those as its main work.
    work = {op for op in ref_ops if op not in TRIVIAL_OPS} or set(ref_ops)
    cand_ops, itself = _forward_ops(tree, names, "ModelNew")
    if itself:
        line = next((n.lineno for n in tree.body if _binds(n, "ModelNew")), None)
        return [Flag("torch_fallback", f"{itself}: every operator of the reference runs as torch runs it", line)]
    cand_ops = {**_native_ops(tree), **cand_ops}
    shared = sorted((op for op in cand_ops if op in work), key=lambda op: cand_ops[op])
    if not shared:
        return []
    return [
        Flag(
            "torch_fallback",
            f"ModelNew.forward calls {', '.join(shared)}, as the reference's Model.forward does "
            "(a torch fallback rather than a kernel?)",
            cand_ops[shared[0]],
        )
    ]


def _binds(node: ast.stmt, name: str) -> bool:
    if isinstance(node, ast.ClassDef):
        return node.name == name
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
