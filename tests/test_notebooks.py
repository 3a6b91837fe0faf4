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


def declared_defaults(path, tmp_path):
    import ast

    import papermill

    params = papermill.inspect_notebook(str(report.to_ipynb(path, tmp_path / f"{path.stem}.ipynb")))
    return {name: ast.literal_eval(p["default"]) for name, p in params.items()}


def test_parameters_cells_hold_the_quick_defaults(tmp_path):
    """A notebook run as-is in JupyterLab computes what `make report` (quick) computes, with the same models."""
    for path in NOTEBOOKS:
        defaults = declared_defaults(path, tmp_path)
        quick = report.parameters(path.stem, "quick", declared=defaults)
        quick.pop("datasets", None)  # the quick report also lists the unavailable data sets, to show the message
        assert {k: defaults[k] for k in quick} == quick, path.stem
