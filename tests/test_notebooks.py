"""Smoke execution of every notebook: each runs under the smoke profile and writes its results."""
import json

import pytest

from lib import report

NOTEBOOKS = sorted(report.NOTEBOOKS.glob("[0-9]*.py"))


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_under_smoke(path, tmp_reports, tmp_cache):
    html = report.execute(path, "smoke")
    assert html.exists() and html.stat().st_size > 10_000
    results = json.loads((tmp_reports / "smoke" / "results" / f"{path.stem}.json").read_text())
    assert results["profile"] == "smoke" and results["headline"]
    assert all(h["value"] is not None for h in results["headline"])
    assert "not available" in html.read_text() or not results["unavailable"]
