"""The HTML report: self-contained, every run-supplied string escaped, and right in a browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reports import compare, html, leaderboard
from reports.load import load, load_runs

PLANTED = "<script>document.title='pwned'</script>"
PLANTED_IMG = "<img src=x onerror=\"document.title='pwned-img'\">"


def planted_logickor(logickor_dir: Path, root: Path) -> Path:
    """A real model, and a copy of another whose first answer carries a script, whose judge
    message carries an img handler and whose question tries to close the markup around it.
    The copy sorts first, so its answers are the first run text on the page."""
    shutil.copytree(logickor_dir / "openai/gpt-4-1106-preview", root / "openai/gpt-4-1106-preview")
    planted = root / "0-planted" / "model"
    shutil.copytree(logickor_dir / "yanolja/EEVE-Korean-Instruct-10.8B-v1.0", planted)
    path = planted / "1-shot.jsonl"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8-sig").splitlines()]
    rows[0]["outputs"][0] = f"Sure. {PLANTED} & done"
    rows[0]["query_single"]["judge_message"] = f"Fine answer {PLANTED_IMG}"
    rows[0]["questions"][1] = "</div></details><h1>injected heading</h1>"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return root


@pytest.fixture(scope="module")
def report_page(logickor_dir: Path, runs: dict[str, Path], tmp_path_factory) -> str:
    root = planted_logickor(logickor_dir, tmp_path_factory.mktemp("planted") / "evaluated")
    loaded = load([root, runs["base"]])
    return html.page(loaded, leaderboard.build(loaded.scores), "round")


@pytest.fixture(scope="module")
def compare_page(runs: dict[str, Path]) -> str:
    loaded = load_runs([runs["base"], runs["fused"]])
    comparisons = compare.compare(loaded, resamples=500)
    failures = compare.gate(comparisons, 0.0, None)
    lines = ["FAIL: planted gate line"] if failures else ["PASS: planted gate line"]
    return html.page(
        loaded,
        leaderboard.build(loaded.scores),
        "round",
        5,
        comparisons,
        compare.model_card(comparisons),
        failures,
        lines,
    )


def _images(page: str) -> list[bytes]:
    return [
        base64.b64decode(m)
        for m in re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)
    ]


def test_everything_from_the_runs_is_escaped(report_page: str) -> None:
    assert "<script" not in report_page  # neither the planted one nor any of ours
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt; &amp; done" in report_page
    assert "onerror=" not in report_page.replace("onerror=&#34;", "")
    assert "&lt;img src=x onerror=&#34;document.title=&#39;pwned-img&#39;&#34;&gt;" in report_page
    assert "<h1>injected heading</h1>" not in report_page
    assert "&lt;h1&gt;injected heading&lt;/h1&gt;" in report_page


def test_self_contained(report_page: str, compare_page: str) -> None:
    for page in (report_page, compare_page):
        assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing to fetch
        assert "http://" not in page.split("<body>")[0] and "https://" not in page
        assert "Content-Security-Policy" in page and "default-src 'none'" in page
        assert "<style>" in page
        for svg in _images(page):
            root = ET.fromstring(svg)  # well-formed SVG
            assert root.tag.endswith("svg") and b"<script" not in svg


def test_sections(report_page: str, compare_page: str) -> None:
    assert report_page.count('<table class="leaderboard">') == 2  # lm-eval and LogicKor
    assert len(_images(report_page)) == 1  # two LogicKor rows per strategy: one bar chart
    assert "LogicKor per category" in report_page
    assert 'class="sample"' in report_page and "judge · score" in report_page
    assert '<table class="comparison">' in compare_page
    assert '<table class="model-card">' in compare_page
    assert "planted gate line" in compare_page
    assert len(_images(compare_page)) == 3  # one chart per task
    assert "kobest_boolq (acc)" in compare_page and "korunsmile (f1)" in compare_page


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip(
        "Chromium could not be installed (no chromium on PATH; .ci/run installs "
        "Debian's package): the HTML was not checked in a browser"
    )


def _browse(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *flags,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("with_csp", [True, False])
def test_in_headless_chromium(report_page: str, tmp_path: Path, with_csp: bool) -> None:
    """Tables and charts are in the rendered DOM, and the planted script is text that never
    ran: with our Content-Security-Policy, and (escaping alone) without it."""
    page = report_page if with_csp else re.sub(r"<meta http-equiv=[^>]+>", "", report_page)
    assert ("Content-Security-Policy" in page) == with_csp
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    done = _browse(path, tmp_path / "profile", "--dump-dom")
    dom = done.stdout
    assert done.returncode == 0 and "</html>" in dom, done.stderr[-2000:]
    assert "<title>fusebench report</title>" in dom  # the planted scripts did not run
    assert "pwned" not in dom.split("<body>")[0]
    assert "<script" not in dom and "&lt;script&gt;document.title" in dom
    assert dom.count('<table class="leaderboard">') == 2
    assert "data:image/svg+xml;base64," in dom
    shot = tmp_path / "report.png"
    done = _browse(path, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1280,2000")
    assert done.returncode == 0 and shot.stat().st_size > 20_000, done.stderr[-2000:]


def test_a_runaway_answer_is_cut_in_the_browser(logickor_dir: Path, tmp_path: Path) -> None:
    """A 2-million-character answer: the page shows its first 10,000 characters and how many
    it left out, instead of embedding it whole; the judged file keeps everything."""
    folder = tmp_path / "org" / "runaway"
    shutil.copytree(logickor_dir / "openai/gpt-4-1106-preview", folder)
    path = next(iter(sorted(folder.glob("*.jsonl"))))
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8-sig").splitlines()]
    rows[0]["outputs"][0] = "가" * 2_000_000
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    loaded = load([tmp_path])
    page = html.page(loaded, leaderboard.build(loaded.scores), "round")
    assert "가" * 10_000 + "\n… [1,990,000 more characters left out here" in page
    assert "가" * 10_001 not in page
    assert len(page) < 1_000_000
    assert "가" * 2_000_000 in path.read_text("utf-8")
