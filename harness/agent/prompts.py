"""The first request of every conversation: a system prompt and a user prompt from a template.

The shipped template (templates/default.txt) states the contract a candidate must meet (ModelNew,
the same constructor arguments, the backend and the DSL asked for), shows one worked example from
the suite's own solutions, and gives the case file. ``--prompt-template FILE`` replaces it; a
template file holds two sections, each opened by a line ``=== system ===`` or ``=== user ===``, and
uses ``$name`` placeholders (``$$`` is a dollar sign): see `PLACEHOLDERS`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness.agent.seams import BadInput, Case, solution_paths

DSLS = ("triton", "cuda", "cpp", "ascendc", "torch")
DEFAULT_DSL = {"cpu": "cpp", "gpu": "triton", "npu": "triton"}
DEVICES = {"cpu": "the CPU", "gpu": "an NVIDIA GPU (CUDA)", "npu": "a Huawei Ascend NPU"}
DSL_NAMES = {"triton": "Triton", "cuda": "CUDA", "cpp": "C++", "ascendc": "Ascend C", "torch": "plain PyTorch"}
DSL_INSTRUCTIONS = {
    "triton": "Triton kernels (`@triton.jit`) launched from `forward` on a grid; allocate outputs with torch.",
    "cuda": "CUDA C++ kernels compiled when the file is imported, with `torch.utils.cpp_extension.load_inline` "
    "(`cuda_sources`).",
    "cpp": "C++ compiled when the file is imported, with `torch.utils.cpp_extension.load_inline` (`cpp_sources`); "
    "OpenMP and loops the compiler can vectorise are welcome.",
    "ascendc": "Ascend C kernels for the NPU, built and called through torch_npu's custom operator support.",
    "torch": "PyTorch operations only, no custom kernels: a better algorithm, fewer and cheaper operations, a "
    "better memory layout.",
}
# The suite's solution folder (<suite>/solutions/<folder>) whose files serve as worked examples per DSL.
EXAMPLE_FOLDERS = {"triton": "triton", "cuda": "cuda", "cpp": "cpu", "ascendc": "ascendc", "torch": "torch"}
PLACEHOLDERS = (
    "case_name",
    "tier",
    "backend",
    "device",
    "dsl",
    "dsl_name",
    "dsl_instructions",
    "case_source",
    "example",
)
SECTIONS = ("system", "user")


@dataclass(frozen=True)
class Template:
    """A parsed prompt template: the two sections and the file they came from."""

    system: str
    user: str
    source: str


def default_template_text() -> str:
    return resources.files("harness.agent").joinpath("templates/default.txt").read_text(encoding="utf-8")


def parse_template(text: str, source: str) -> Template:
    """The sections of a template file; BadInput naming the file for a missing section or bad placeholder."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        marker = line.strip()
        name = marker[3:-3].strip() if marker.startswith("===") and marker.endswith("===") else None
        if name in SECTIONS:
            current = sections.setdefault(name, [])
        elif current is not None:
            current.append(line)
    missing = [s for s in SECTIONS if s not in sections]
    if missing:
        raise BadInput(
            f"{source}: prompt template lacks the section(s) {', '.join(missing)}; "
            "open each with a line '=== system ===' or '=== user ==='"
        )
    template = Template(
        "\n".join(sections["system"]).strip() + "\n", "\n".join(sections["user"]).strip() + "\n", source
    )
    for section in (template.system, template.user):
        _render(section, dict.fromkeys(PLACEHOLDERS, ""), source)  # fail now, not in the middle of a run
    return template


def load_template(path: Path | None) -> Template:
    """``--prompt-template`` if given, else the shipped default."""
    if path is None:
        return parse_template(default_template_text(), "the default prompt template")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--prompt-template {path}: cannot read it ({exc})") from exc
    return parse_template(text, str(path))


def _render(section: str, values: dict[str, str], source: str) -> str:
    try:
        return string.Template(section).substitute(values)
    except KeyError as exc:
        raise BadInput(
            f"{source}: unknown placeholder ${exc.args[0]}; known: {', '.join('$' + p for p in PLACEHOLDERS)}"
        ) from exc
    except ValueError as exc:
        raise BadInput(f"{source}: {exc}; write $$ for a dollar sign") from exc


class PromptBuilder:
    """Renders the prompts of a case; worked examples come from ``examples`` (a solution set of the suite)."""

    def __init__(self, template: Template, backend: str, dsl: str, suite_cases: list[Case], examples: Path | None):
        self.template = template
        self.backend = backend
        self.dsl = dsl
        # Shortest example files first: a worked example should be read, not skimmed.
        found = [(c, paths[0]) for c in suite_cases if examples and (paths := solution_paths(examples, c))]
        self._examples = sorted(found, key=lambda item: (item[1].stat().st_size, item[0].name))

    def example_for(self, case: Case) -> tuple[Case, Path] | None:
        """The worked example shown with ``case``: never the case itself."""
        return next(((c, p) for c, p in self._examples if c.name != case.name), None)

    def example_text(self, case: Case) -> str:
        found = self.example_for(case)
        if found is None:
            return ""
        example, solution = found
        return (
            f"\nA worked example from the same suite. The case `{example.name}`:\n\n```python\n"
            f"{example.path.read_text(encoding='utf-8').strip()}\n```\n\nand a correct, faster ModelNew for it:"
            f"\n\n```python\n{solution.read_text(encoding='utf-8').strip()}\n```\n"
        )

    def build(self, case: Case) -> tuple[str, str]:
        """``(system, user)`` prompts for ``case``."""
        values = {
            "case_name": case.name,
            "tier": case.tier,
            "backend": self.backend,
            "device": DEVICES[self.backend],
            "dsl": self.dsl,
            "dsl_name": DSL_NAMES[self.dsl],
            "dsl_instructions": DSL_INSTRUCTIONS[self.dsl],
            "case_source": case.path.read_text(encoding="utf-8").strip(),
            "example": self.example_text(case),
        }
        source = self.template.source
        return _render(self.template.system, values, source), _render(self.template.user, values, source)


def default_examples(suite: Path, dsl: str) -> Path | None:
    """``<suite>/solutions/<folder for dsl>`` when it exists."""
    folder = suite / "solutions" / EXAMPLE_FOLDERS[dsl]
    return folder if folder.is_dir() else None
