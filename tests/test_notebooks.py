"""Smoke execution of every notebook, in order, as `make report PROFILE=smoke` would run them: one report
folder and one model cache for the session, so later notebooks use earlier ones' models and records."""
import json
import os

import pytest

from lib.infra import profiles
from lib.reporting import execute, page_check, params, report

SHARED = ("model_settings", "attack")  # declared None, read from the profile when run as-is

NOTEBOOKS = sorted(report.NOTEBOOKS.glob("[0-9]*.py"))


@pytest.fixture(scope="module")
def smoke_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    saved = {k: os.environ.get(k) for k in ("DIMPLED_REPORTS", "DIMPLED_CACHE")}
    os.environ.update(DIMPLED_REPORTS=str(root / "reports"), DIMPLED_CACHE=str(root / "cache"))
    yield root / "reports"
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_under_smoke(path, smoke_dirs, capfd):
    html = execute.execute(path, "smoke")
    assert "without encryption" not in capfd.readouterr().err  # the kernel's start-up noise stays out of the terminal
    assert html.exists() and html.stat().st_size > 10_000
    results = json.loads((smoke_dirs / "smoke" / "results" / f"{path.stem}.json").read_text())
    assert results["profile"] == "smoke" and results["headline"]
    assert all(h["value"] is not None for h in results["headline"])
    assert "not available" in html.read_text() or not results["unavailable"]
    assert (smoke_dirs / "smoke" / f"{path.stem}.fingerprint.json").exists()  # a finished run is recorded
    assert not page_check.leaks(html.read_text())  # no repr, nan, inf or traceback where a reader reads


@pytest.mark.notebook
def test_the_smoke_reports_first_pages_show_no_reprs_and_every_grid_link_lands(smoke_dirs):
    """After every notebook: the index and verdicts.html, read as a reader reads them, hold no Python repr, nan, inf
    or traceback, and every verdict link of the index's grid names a row that verdicts.html has."""
    import re

    from lib.reporting import index

    page = index.build_index("smoke").read_text()
    verdict_page = (smoke_dirs / "smoke" / "verdicts.html").read_text()
    assert not page_check.leaks(page) and not page_check.leaks(verdict_page)
    targets = re.findall(r'href="verdicts\.html#([^"]+)"', page)
    assert targets and all(f'id="{t}"' in verdict_page for t in targets)


def declared_defaults(path, tmp_path):
    import ast

    import papermill

    params = papermill.inspect_notebook(str(execute.to_ipynb(path, tmp_path / f"{path.stem}.ipynb")))
    return {name: ast.literal_eval(p["default"]) for name, p in params.items()}


def test_parameters_cells_hold_the_quick_defaults(tmp_path):
    """A notebook run as-is in JupyterLab computes what `make report` (quick) computes, with the same models: each
    default is the quick value, or None where the notebook reads the quick profile's value at run time (run.shared:
    model_settings and attack, written once, in the profile)."""
    for path in NOTEBOOKS:
        defaults = declared_defaults(path, tmp_path)
        quick = params.resolve(path.stem, "quick", declared_params=defaults)
        quick.pop("datasets", None)
        quick.pop("profile")  # the quick report also lists the unavailable data sets, to show the message
        as_run = {k: profiles.shared("quick", k, defaults[k], path.stem) if k in SHARED else defaults[k] for k in quick}
        assert as_run == quick, path.stem
        assert all(defaults.get(k, None) is None for k in SHARED), path.stem  # never a second copy of the profile's
