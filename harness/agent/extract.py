"""Taking the candidate file out of a model's reply: the first fenced python block.

Reasoning models (Qwen3, DeepSeek-R1) think aloud inside ``<think>...</think>`` and often sketch
code there; only what follows the thinking is the answer, so thinking is removed first (also from
the history sent back, see `conversation`). A block tagged ``python``/``py``/``python3`` wins; a
reply whose only code is one untagged block defining ``ModelNew`` is accepted too (small models
forget the tag). A reply without either gets a fixed feedback message asking for a block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PYTHON_TAGS = frozenset({"python", "py", "python3"})
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_OPEN = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)")

NO_CODE_FEEDBACK = (
    "Your reply had no fenced python code block, so nothing could be evaluated. Reply with the complete "
    "file (imports, any kernels, and class ModelNew) in one block that starts with ```python and ends with ```."
)
TRUNCATED_NOTE = (
    ' Your reply was cut off at the token limit (finish_reason "length") before the block was closed: '
    "think less and write the code sooner."
)


@dataclass(frozen=True)
class Extraction:
    """The code found in a reply, or why there is none."""

    code: str | None
    error: str | None


def strip_thinking(text: str) -> str:
    """``text`` without ``<think>...</think>`` sections; an unclosed ``<think>`` hides the rest."""
    text = _THINK.sub("", text)
    opened = text.lower().find("<think>")
    if opened >= 0:
        text = text[:opened]
    # Servers that strip the opening tag leave "...thinking...</think> answer".
    closed = text.lower().rfind("</think>")
    return text[closed + len("</think>") :] if closed >= 0 else text


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(tag, body)`` of every closed fenced block of ``text``, in order (CommonMark fences)."""
    blocks: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        fence, tag = match.group(1), match.group(2).lower()
        closing = re.compile(rf"^[ \t]{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        for j in range(i + 1, len(lines)):
            if closing.match(lines[j]):
                blocks.append((tag, "\n".join(lines[i + 1 : j]) + "\n"))
                i = j + 1
                break
        else:
            return blocks  # an unclosed fence runs to the end: nothing after it is a block
    return blocks


def extract_code(reply: str, finish_reason: str | None = None) -> Extraction:
    """The first fenced python block of ``reply`` (thinking removed), or the reason there is none."""
    blocks = fenced_blocks(strip_thinking(reply))
    for tag, body in blocks:
        if tag in PYTHON_TAGS and body.strip():
            return Extraction(code=body, error=None)
    untagged = [body for tag, body in blocks if not tag and "ModelNew" in body]
    if untagged:
        return Extraction(code=untagged[0], error=None)
    why = "no fenced python code block in the reply"
    if finish_reason == "length":
        why += " (cut off at the token limit)"
    return Extraction(code=None, error=why)


def no_code_feedback(finish_reason: str | None) -> str:
    """The fixed message sent back for a reply without code."""
    return NO_CODE_FEEDBACK + (TRUNCATED_NOTE if finish_reason == "length" else "")
