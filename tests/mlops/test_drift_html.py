"""The HTML drift report in Chromium with every network request refused: the charts draw, the table and
the verdict show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlops.drift import compare
from mlops.drift.report import to_html
from tests.conftest import need_service

CHROMIUM = "/usr/bin/chromium"


def test_report_opens_offline_with_charts(tmp_path):
    if not Path(CHROMIUM).exists():
        need_service("Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(3)
    reference = pa.table({"age": rng.normal(40, 10, 3000), "plan": rng.choice(["free", "pro"], 3000, p=[0.7, 0.3])})
    current = pa.table({"age": rng.normal(48, 10, 2000), "plan": rng.choice(["free", "pro"], 2000, p=[0.3, 0.7])})
    report = compare(reference, current)
    path = tmp_path / "report.html"
    path.write_text(to_html(report, reference, current))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page()
            refused = []
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def only_the_file(route):
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    refused.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_file)
            page.goto(path.as_uri())
            page.wait_for_selector("#chart-1 .main-svg")
            assert page.locator("#verdict").inner_text() == "Dataset drift detected"
            rows = page.locator("#columns tbody tr")
            assert rows.count() == 2
            assert rows.nth(0).inner_text().split("\t")[:3] == ["age", "numerical", "wasserstein"]
            assert page.locator("#chart-0 .legendtext").all_text_contents() == ["reference", "current"]
            assert sorted(page.locator("#chart-1 .xtick").all_text_contents()) == ["free", "pro"]
            assert refused == [] and errors == []
        finally:
            browser.close()


@pytest.mark.parametrize("name", ["</script><script>alert(1)</script>", "<b>bold</b>"])
def test_column_names_are_escaped(name):
    reference = pa.table({name: np.arange(50.0)})
    current = pa.table({name: np.arange(50.0) + 1})
    page = to_html(compare(reference, current), reference, current)
    assert "<script>alert(1)</script>" not in page and "<b>bold</b>" not in page
