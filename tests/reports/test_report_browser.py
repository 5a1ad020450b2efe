"""The report's index.html in a real browser: headless Chromium over the DevTools protocol.

Needs Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it). Without
it these tests skip, unless ``GEOMROBUST_REQUIRE_CHROMIUM=1`` (set by CI) makes that a
failure. The screenshot is saved in the test's folder, or in ``GEOMROBUST_SCREENSHOT_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _chromium import Chromium, find_chromium

CHROMIUM = find_chromium()

if CHROMIUM is None:
    if os.environ.get("GEOMROBUST_REQUIRE_CHROMIUM") == "1":
        raise RuntimeError("GEOMROBUST_REQUIRE_CHROMIUM=1 but no chromium on PATH")
    pytest.skip("needs Chromium (Debian: apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with Chromium(CHROMIUM) as chromium:
        yield chromium


def _screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = os.environ.get("GEOMROBUST_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder) / name
    return tmp_path / name


def test_report_renders_every_figure_offline(browser, full_report, tmp_path):
    shot = _screenshot_path(tmp_path, "report.png")
    report = browser.open(
        full_report.html,
        screenshot=shot,
        script="[document.querySelectorAll('figure').length, "
        "document.querySelectorAll('table').length, document.title]",
    )
    pngs = sorted(full_report.folder.glob("figures/*.png"))
    assert len(report.images) == len(pngs) > 10
    broken = [img["alt"] for img in report.images if not img["ok"]]
    assert broken == []
    assert all(img["width"] >= 200 and img["height"] >= 100 for img in report.images)
    figures, tables, title = report.value
    assert figures == len(pngs)
    # inputs, two sweep groups, the flips along the scale sequence, the pair classifiers
    assert tables == 1 + 2 + 1 + 1
    assert title == "Geometric robustness report"
    assert report.console_errors == []
    assert report.exceptions == []
    assert report.dialogs == []
    assert report.outside_requests() == []
    assert report.requests[0] == full_report.html.resolve().as_uri()
    # The screenshot is a real, full-page PNG.
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert 1200 <= width <= 1280  # the viewport, less a scrollbar
    assert height > 3000


def test_script_in_a_model_name_is_shown_not_run(browser, evil_report):
    report = browser.open(
        evil_report.html,
        script="[document.scripts.length, document.body.innerText.includes("
        "'<script>alert(1)</script>')]",
    )
    assert report.dialogs == []
    assert report.value == [0, True]
    assert report.console_errors == []


def test_the_harness_sees_requests_errors_and_dialogs(browser, tmp_path):
    """The checks above can fail: a page that breaks every rule is caught on each count."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><title>bad</title>"
        '<img alt="remote" src="http://example.invalid/x.png">'
        '<script>console.error("boom"); alert("hi"); throw new Error("oops");</script>'
    )
    report = browser.open(bad)
    assert report.outside_requests() == ["http://example.invalid/x.png"]
    assert "boom" in report.console_errors
    assert report.dialogs == ["hi"]
    assert any("oops" in e for e in report.exceptions)
    assert [img["ok"] for img in report.images] == [False]
