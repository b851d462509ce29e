"""The static leaderboard site: built from the records, deterministic, and working in a real browser."""

from __future__ import annotations

import filecmp
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest

from analysis.site import SITE_DIR, build_site, reported_suites
from benchmark import paths

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def test_a_suite_page_links_every_entry_and_shows_its_curves_and_profiles(tmp_path):
    pages = build_site([("quick", paths.records_dir("quick"))], tmp_path, str(DATA_DIR))
    index = (tmp_path / "index.html").read_text()
    entries = sorted(p.relative_to(tmp_path).as_posix() for p in pages if "entries" in p.parts)
    board = pd.read_csv(paths.RESULTS_DIR / "leaderboard-quick.csv")
    assert len(entries) == board["model"].nunique()
    assert all(f'href=\\"{entry}\\"' in index or f'href="{entry}"' in index for entry in entries)
    distilled = (tmp_path / "entries/quick/ml-100k/sasrec-kd.html").read_text()
    assert "β (distillation weight)" in distilled and "What the teacher wrote" in distilled
    plain = (tmp_path / "entries/quick/ml-100k/sasrec.html").read_text()
    assert "What the teacher wrote" not in plain and "validation NDCG@10" in plain


@pytest.mark.slow
def test_the_committed_site_regenerates_byte_identical(tmp_path):
    build_site([(suite, paths.records_dir(suite)) for suite in reported_suites()], tmp_path / "site", str(DATA_DIR))
    comparison = filecmp.dircmp(tmp_path / "site", SITE_DIR)

    def differences(node: filecmp.dircmp) -> list[str]:
        _, mismatch, errors = filecmp.cmpfiles(node.left, node.right, node.common_files, shallow=False)
        found = node.left_only + node.right_only + mismatch + errors
        return found + [name for sub in node.subdirs.values() for name in differences(sub)]

    assert differences(comparison) == [], "results/site is stale: run python -m analysis.site"


def _browser() -> str:
    executable = os.environ.get("SEQREC_KD_BROWSER") or shutil.which("chromium")
    if not executable:  # CI sets SEQREC_KD_BROWSER, so there a missing browser fails instead
        pytest.skip("no chromium (apt-get install chromium, or set SEQREC_KD_BROWSER)")
    return executable


@pytest.fixture
def served_site():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_site_works_in_a_real_browser(served_site, tmp_path):
    """Opened from file:// and over HTTP: no console error; sorting by NDCG@10 puts the best entry first;
    the dataset filter hides the other datasets; an entry page draws its β curve; at phone width nothing
    overflows the page; screenshots saved."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_browser(), args=["--no-sandbox"])
        for name, root in (("file", SITE_DIR.resolve().as_uri()), ("http", served_site)):
            _browse(browser, root, tmp_path / name)
        browser.close()


def _browse(browser, root: str, shots: Path) -> None:
    from playwright.sync_api import expect

    board = pd.read_csv(paths.RESULTS_DIR / "leaderboard-full.csv")
    primary = board[board["metric"] == "ndcg@10"]
    best = primary.loc[primary["mean"].idxmax()]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{root}/index.html")
    table = page.locator("#table-full")
    page.wait_for_selector("#table-full_wrapper .dtsp-searchPane")
    header = page.locator("#table-full_wrapper th", has_text="NDCG@10")
    for direction in ("ascending", "descending"):  # the second click sorts descending
        header.locator(".dt-column-order").click()
        expect(header).to_have_attribute("aria-sort", direction)
    first = table.locator("tbody tr").first.locator("td")
    assert first.nth(4).inner_text() == best["model"]
    assert float(first.nth(6).inner_text()) == pytest.approx(best["mean"], abs=5e-5)
    pane = page.locator("#table-full_wrapper .dtsp-searchPane").filter(has=page.locator("input[placeholder=dataset]"))
    pane.locator("tr", has_text="ml-100k").first.click()
    datasets = table.locator("tbody tr td:first-child").all_inner_texts()
    assert set(datasets) == {"ml-100k"} and len(datasets) == (primary["dataset"] == "ml-100k").sum()
    shots.mkdir()
    page.screenshot(path=str(shots / "index.png"))
    page.goto(f"{root}/entries/paper/amazon-beauty/sasrec-kd.html")
    assert page.locator("figure.curves svg text", has_text="β").count() >= 1
    page.screenshot(path=str(shots / "entry.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{root}/index.html")
    page.wait_for_selector("#table-full_wrapper")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "phone.png"))
    assert errors == []
    assert all((shots / name).stat().st_size > 10_000 for name in ("index.png", "entry.png", "phone.png"))
