import json

import pytest

from lib import execute, index, params, report, runtime


def test_parameters_merge_all_then_notebook():
    p = params.resolve("01_classifiers", "smoke")
    assert p["profile"] == "smoke" and p["seed"] == 0 and p["test_subset"] == 200 and p["classifier_epochs"] == 1
    assert "ae_epochs" not in p


def test_unknown_profile_names_the_profiles():
    with pytest.raises(ValueError, match="paper, quick, smoke"):
        params.resolve("01_classifiers", "huge")


def test_unknown_parameter_is_refused(tmp_reports):
    with pytest.raises(ValueError, match="unknown parameter"):
        execute.execute(report.NOTEBOOKS / "01_classifiers.py", "smoke", extra={"epoch": 3})


def test_results_and_index(tmp_reports):
    run = runtime.Run("01_classifiers", "smoke", 0, runtime.pick_device("cpu"))
    report.write_results(run, "01 · Classifiers", [report.headline("mnist test accuracy", 0.9712, "%", "98%"),
                                                   report.headline("a ratio", float("inf"), "x"),
                                                   report.headline("a gap", float("nan"), "x")],
                         data_sources={"mnist": "a sample"}, unavailable={"cifar10": "offline"})
    saved = json.loads((tmp_reports / "smoke" / "results" / "01_classifiers.json").read_text())
    assert saved["headline"][0]["value"] == 0.9712 and saved["profile"] == "smoke"
    page = index.build_index("smoke").read_text()
    assert "97.12%" in page and "a sample" in page and "cifar10: not available" in page
    assert "a ratio: <b>∞</b>" in page and "a gap: <b>–</b>" in page
    assert "02_autoencoders" in page and "not run" in page
    assert "No verdicts yet" in page
    report.write_results(run.__class__("05_statistics", "smoke", 0, run.device), "05", [],
                         verdicts=[{"claim": "on > off", "dataset": "mnist", "split": "test", "statistic": "Wilcoxon",
                                    "effect_text": "3.1x [2.8, 3.5]", "p_holm": 1e-9, "n": 200, "power": 1.0,
                                    "verdict": "explained by dimension alone"}])
    page = index.build_index("smoke").read_text()
    assert page.index("Verdicts") < page.index("Notebooks") and "explained by dimension alone" in page


def test_bad_common_parameters():
    with pytest.raises(ValueError, match="profile must be one of"):
        runtime.start("x", "fast")
    with pytest.raises(ValueError, match="device must be"):
        runtime.pick_device("tpu")
