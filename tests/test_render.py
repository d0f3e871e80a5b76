"""`harness report`: markdown for PR comments, self-contained HTML with plots (seen by a real browser)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from harness.analysis.compare import compare_runs, comparison_payload
from harness.artifacts.provenance import host_environment
from harness.render.html import render_html
from harness.render.markdown import cell, render_markdown
from tests.analysis_support import make_run, write_json
from tests.conftest import run_harness

FAILURE = ("fail", "correctness_check", "trial 0: max abs error 0.5 | beyond atol\nsecond line")


def run_with_failure() -> dict[str, Any]:
    return make_run(
        30, seed=1, statuses={4: FAILURE, 7: ("timeout", "measuring_solution", "no result in 300 s")}
    )


def comparison() -> dict[str, Any]:
    old, new = make_run(12, seed=2), make_run(12, seed=3, slower={1: 1.3, 2: 0.7}, statuses={5: FAILURE})
    ref = {"path": "old.json", "sha256": None, "solutions": "solutions/synthetic", "complete": True}
    return comparison_payload(
        compare_runs(old, new), {"command_line": ["t"], "config": {}}, host_environment(), ref, ref
    )


# --- markdown ----------------------------------------------------------------------------------------


def test_run_markdown_has_summary_tier_table_case_table_and_failures_with_reasons() -> None:
    text = render_markdown(run_with_failure())
    assert text.startswith("## Kernel benchmark")
    assert "**30 cases**" in text and "### Per tier" in text and "| t2 |" in text
    assert "### Cases" in text and "<details>" in text  # 30 rows are folded for a PR comment
    assert "### Failures (2)" in text
    assert "max abs error 0.5 \\| beyond atol second line" in text  # pipes escaped, one line
    assert "no result in 300 s" in text


def test_every_markdown_table_row_has_the_header_s_column_count() -> None:
    for text in (render_markdown(run_with_failure()), render_markdown(comparison())):
        for block in re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.M):
            rows = [re.split(r"(?<!\\)\|", r)[1:-1] for r in block.strip().splitlines()]
            assert len({len(r) for r in rows}) == 1, block


def test_comparison_markdown_lists_what_needs_attention_first() -> None:
    text = render_markdown(comparison())
    attention = text.split("### Needs attention")[1].split("### All cases")[0]
    assert attention.index("broken") < attention.index("regressed") < attention.index("improved")
    assert "Rule:" in text and "mann-whitney-u" in text


def test_cell_escapes_pipes_and_newlines() -> None:
    assert cell("a|b\nc") == "a\\|b c"


# --- html --------------------------------------------------------------------------------------------


def assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)\s*=", page, flags=re.I)
    assert "url(" not in page
    assert set(re.findall(r"https?://[^\"' )]+", page)) <= {
        "http://www.w3.org/2000/svg"
    }  # a namespace, not fetched


def test_run_html_is_self_contained_with_three_plots() -> None:
    page = render_html(run_with_failure())
    assert_self_contained(page)
    assert page.count("<svg") == 3
    assert "speedup per case" in page and "per tier" in page and "distribution" in page
    assert "max abs error 0.5 | beyond atol" in page  # reason shown, html-escaped where needed


def test_reports_tell_a_broken_case_from_a_candidate_error() -> None:
    run = make_run(6, seed=2, statuses={2: ("error", "loading_modules", "reference case failed: no get_inputs")})
    run["cases"][2]["case_error"] = True
    run["summary"]["broken_cases"] = 1
    page = render_html(run)
    assert "broken cases" in page and "broken case</td>" in page
    assert "0 / 0 / 0" in page  # the card's errors are the candidates' only
    assert "broken case" in render_markdown(run)


def test_comparison_html_plots_the_change_per_case_with_intervals() -> None:
    page = render_html(comparison())
    assert_self_contained(page)
    assert page.count("<svg") == 1 and "change of normalised time per case" in page
    assert page.count("<circle") >= 10  # one estimate per timed case


def test_report_cli_writes_each_format_and_accepts_a_comparison(tmp_path: Path) -> None:
    result = write_json(tmp_path / "result.json", run_with_failure())
    for fmt in ("table", "markdown", "html"):
        out = tmp_path / f"report.{fmt}"
        proc = run_harness("report", str(result), "--format", fmt, "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_size > 500
    stdout = run_harness("report", str(result), "--format", "markdown")
    assert stdout.returncode == 0 and stdout.stdout.startswith("## Kernel benchmark")
    cmp_path = write_json(tmp_path / "cmp.json", comparison())
    assert run_harness("validate", str(cmp_path)).returncode == 0
    proc = run_harness("report", str(cmp_path), "--format", "markdown")
    assert proc.returncode == 0 and "A/B comparison" in proc.stdout


def test_report_refuses_other_artifacts_with_exit_2(tmp_path: Path) -> None:
    leaderboard = tmp_path / "leaderboard.json"
    leaderboard.write_text('{"artifact_type": "leaderboard"}')
    proc = run_harness("report", str(leaderboard))
    assert proc.returncode == 2 and str(leaderboard) in proc.stderr


# --- a real browser ----------------------------------------------------------------------------------


def png_pixels(path: Path) -> tuple[int, int, set[bytes]]:
    """(width, height, distinct colours) of an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color_type in (2, 6) and interlace == 0
    bpp = 3 if color_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    previous, colours = bytearray(stride), set[bytes]()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = previous[i], previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if y % 4 == 0:  # every fourth row is plenty to count colours
            colours.update(bytes(line[i : i + 3]) for i in range(0, stride, bpp))
        previous = line
    return width, height, colours


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"
)
@pytest.mark.parametrize("kind", ["run", "comparison"])
def test_html_report_renders_in_headless_chromium(tmp_path: Path, kind: str) -> None:
    page = tmp_path / f"{kind}.html"
    page.write_text(render_html(run_with_failure() if kind == "run" else comparison()))
    shot = tmp_path / f"{kind}.png"
    browser = chromium()
    assert browser is not None
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1200,2000",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.is_file(), "chromium wrote no screenshot"
    width, height, colours = png_pixels(shot)
    assert (width, height) == (1200, 2000)
    assert len(colours) > 30, f"the page looks blank: {len(colours)} distinct colours"
    assert bytes.fromhex("2e8b57") in colours  # the "faster" green of the plots was painted
