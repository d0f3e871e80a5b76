"""What several commands share: the console, the suite and evaluation options, the provenance block."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

BACKEND_CHOICES = ("cpu", "gpu", "npu")


class Context:
    def __init__(self, debug: bool) -> None:
        self.debug = debug


def console(stderr: bool = False) -> Any:
    """A rich console on stdout (or stderr) that never folds lines in pipes and CI logs."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Pipes and CI logs get wide lines instead of rich's 80-column default: nothing is folded.
    width = None if stream.isatty() else 200
    return Console(stderr=stderr, highlight=False, width=width)


def debug_enabled() -> bool:
    """Whether ``--debug`` was given (before or after the command): a container run gets it too."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return bool(getattr(obj, "debug", False))


def broken_case_message(result: Any) -> str:
    """One line for a result whose case file is at fault: what is wrong with it and that it is not the candidate."""
    reason = (result.reason or "").removeprefix("reference case failed: ")
    where = "" if result.case_path and result.case_path in reason else f" in {result.case_path}"
    return f"broken case {result.tier}/{result.name}{where}: {reason} (the case is at fault, not the candidate)"


class DeviceIndices(click.ParamType):
    """``--devices``: device indices on the backend, ``0`` or ``0,1``; a malformed value is a usage error."""

    name = "devices"

    def __init__(self, single: bool = False) -> None:
        self.single = single

    def get_metavar(self, param: click.Parameter, *args: Any, **kwargs: Any) -> str:
        return "N" if self.single else "0,1"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        items = [item.strip() for item in str(value).split(",")]
        if not all(item.isdigit() for item in items):
            self.fail(f"{value!r} is not a device index such as 0 (or a list such as 0,1)", param, ctx)
        if self.single and len(items) != 1:
            self.fail(f"{value!r}: this command runs on one device; pass one index, e.g. --devices 1", param, ctx)
        return ",".join(str(int(item)) for item in items)


def devices_option(single: bool) -> Any:
    """The one device option of every command: ``--devices`` (one index where a command uses one device)."""
    help_text = (
        "Index of the device to use on the backend (default: 0)."
        if single
        else "Device indices to use, one worker each (default: 0)."
    )
    return click.option("--devices", type=DeviceIndices(single), default=None, help=help_text)


suite_option = click.option(
    "--suite",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("benchmark"),
    show_default=True,
    help="Folder holding the tier folders t1/, t2/, ... of reference cases (relative to the current folder).",
)
tier_option = click.option(
    "--tier", "tiers", multiple=True, metavar="tN", help="Only cases of this tier (repeatable: --tier t1 --tier t2)."
)
case_option = click.option("--case", "names", multiple=True, metavar="NAME", help="Only this case (repeatable).")
filter_option = click.option(
    "--filter", "keyword", metavar="KW", help="Only cases whose name or docstring summary contains KW."
)


def _eval_options() -> dict[str, Any]:
    """The options of how one candidate is evaluated, by parameter name, in help order."""
    return {
        "timeout_s": click.option(
            "--timeout",
            "timeout_s",
            type=click.FloatRange(min=1),
            default=300.0,
            show_default=True,
            help="Seconds one case may take in all; the candidate's processes are killed after that.",
        ),
        "trials": click.option(
            "--trials",
            type=click.IntRange(min=1),
            default=3,
            show_default=True,
            help="Correctness trials, each with fresh random inputs.",
        ),
        "seed": click.option(
            "--seed",
            type=int,
            default=None,
            help="Seed for inputs and weights (default: a fresh secret seed each run, so outputs can't be cached).",
        ),
        "budget_ms": click.option(
            "--budget-ms",
            type=click.FloatRange(min=1),
            default=400.0,
            show_default=True,
            help="Target timed milliseconds per model per case (repetitions adapt to it, 10..1000).",
        ),
        "rounds": click.option(
            "--rounds",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="Reference and candidate timing alternate in this many rounds.",
        ),
        "flush_cache": click.option(
            "--flush-cache/--warm-cache",
            default=None,
            help="Flush the cache between timed calls (default: on for gpu/npu, off for cpu).",
        ),
        "isolation": click.option(
            "--isolation",
            type=click.Choice(["process", "none"]),
            default="process",
            show_default=True,
            help="process: each candidate in its own killable process (safe). none: in-process, for debugging only.",
        ),
        "output_limit": click.option(
            "--output-limit",
            type=click.IntRange(min=0),
            default=16384,
            show_default=True,
            help="Bytes of the candidate's stdout and of its stderr kept in the result (the last ones).",
        ),
        "build_cache": click.option(
            "--build-cache",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Folder that keeps each solution file's compiled kernels (C++ extensions, Triton) for its"
            " next run, keyed by the file's SHA-256 [default: $HARNESS_BUILD_CACHE, else"
            " ~/.cache/kernel-harness/builds].",
        ),
        "no_build_cache": click.option(
            "--no-build-cache",
            is_flag=True,
            default=False,
            help="Build every candidate from scratch (nothing is read from or kept in the build cache).",
        ),
        "strict": click.option(
            "--strict",
            metavar="IDS",
            default=None,
            help="Static flags of the candidate's source that fail it instead of only being reported, e.g."
            " stream,thread,subprocess (or all); see docs/correctness.md for the flag ids.",
        ),
    }


# `calibrate` shares these (same names, defaults and help); `eval` and `run` take them all.
CALIBRATE_EVAL_OPTIONS = ("timeout_s", "seed", "budget_ms", "rounds", "flush_cache", "isolation")


def eval_options(fn: Any, only: tuple[str, ...] | None = None) -> Any:
    """Add the evaluation options to a command (``only``: just those with these parameter names)."""
    for name, option in reversed(_eval_options().items()):
        if only is None or name in only:
            fn = option(fn)
    return fn


def some_eval_options(*names: str) -> Any:
    """A decorator adding the evaluation options with these parameter names."""
    return lambda fn: eval_options(fn, only=names)


def strict_ids(text: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """The flag ids of ``--strict`` (a usage error names unknown ones); ids already parsed pass through."""
    if not text:
        return ()
    if not isinstance(text, str):
        return tuple(sorted(text))
    from harness.analysis.static_flags import parse_strict

    try:
        return tuple(sorted(parse_strict(text)))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--strict") from exc


def eval_config(backend: str, **kw: Any) -> Any:
    from harness.evaluation.evaluate import EvalConfig
    from harness.timing import TimingConfig

    timing = TimingConfig(budget_ms=kw["budget_ms"], rounds=kw["rounds"], flush_cache=kw["flush_cache"])
    return EvalConfig(
        backend=backend,
        trials=kw["trials"],
        timeout_s=kw["timeout_s"],
        seed=kw["seed"],
        timing=timing,
        output_limit_bytes=kw["output_limit"],
        isolation=kw["isolation"],
        build_cache=build_cache_root(kw.get("build_cache"), kw.get("no_build_cache", False)),
        strict=strict_ids(kw.get("strict")),
    )


def build_cache_root(option: str | Path | None, disabled: bool) -> str | None:
    """The build cache folder the options ask for (None: no cache)."""
    from harness.evaluation.build_cache import default_root

    if disabled:
        return None
    root = Path(option).expanduser() if option else default_root()
    return str(root.resolve()) if root is not None else None


def container_build_cache(kw: dict[str, Any]) -> Path | None:
    """The host folder bound as a container's build cache: the one the options name, else a
    ``container`` folder in the default cache (the image's torch is not the host's)."""
    if kw.get("build_cache") or kw.get("no_build_cache"):
        root = build_cache_root(kw.get("build_cache"), kw.get("no_build_cache", False))
        return Path(root) if root else None
    default = build_cache_root(None, False)
    return Path(default) / "container" if default else None


def provenance(config: dict[str, Any], suite: Path | None, note: str | None = None) -> dict[str, Any]:
    import os

    from harness.artifacts.provenance import command_line, git_commit

    image = os.environ.get("HARNESS_IMAGE")
    return {
        "command_line": command_line(),
        "config": config,
        "suite_git_commit": git_commit(suite) if suite else None,
        "runtime": "docker" if image else "local",
        "runtime_note": note,
        "container_image": {
            "name": image,
            "id": os.environ.get("HARNESS_IMAGE_ID"),
            "digest": os.environ.get("HARNESS_IMAGE_DIGEST") or None,
        }
        if image
        else None,
    }


def runtime_options(fn: Any) -> Any:
    fn = click.option(
        "--image",
        default=None,
        metavar="NAME",
        help="Image for --runtime docker (default: kernel-harness/<backend>:dev, built by nox -s image-<backend>).",
    )(fn)
    return click.option(
        "--runtime",
        type=click.Choice(["local", "docker", "auto"]),
        default="local",
        show_default=True,
        help="docker: run inside the backend's image (no network, read-only root, limits); "
        "auto: docker when an engine answers and the image exists, else local (noted in the result).",
    )(fn)


def to_argv(command: click.Command, values: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    """The option words that give ``command`` these parsed ``values`` (what a child process re-runs).

    Rebuilt from the parsed options, as nox's ``to_argv`` does, instead of editing this process's
    argv: a value given as ``--opt=v``, abbreviated or defaulted comes out the same way. Options at
    their default are left out; positional arguments are the caller's.
    """
    argv: list[str] = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.name is None or param.name in skip:
            continue
        value = values.get(param.name)
        if value is None or value == param.default or (param.multiple and not value):
            continue
        if param.is_flag:
            if value:
                argv.append(param.opts[0])
            elif param.secondary_opts:
                argv.append(param.secondary_opts[0])
        elif param.multiple:
            for item in value:
                argv += [param.opts[0], str(item)]
        else:
            argv += [param.opts[0], str(value)]
    return argv


def now_stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")
