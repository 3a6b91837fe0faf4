import json

import pytest

from lib.inference import verdicts
from lib.infra import runtime
from lib.reporting import execute, index, params, report


def test_parameters_merge_all_then_notebook():
    p = params.resolve("01_classifiers", "smoke")
    assert p["profile"] == "smoke" and p["seed"] == 0 and p["test_subset"] == 200
    assert p["model_settings"]["classifier_epochs"] == 1


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
    index.build_index("smoke")
    page = (tmp_reports / "smoke" / "verdicts.html").read_text()  # the notebooks in detail: beside the verdicts
    assert "97.12%" in page and "a sample" in page and "cifar10: not available" in page
    assert "a ratio: <b>&gt; budget (most attacks failed)</b>" in page and "a gap: <b>–</b>" in page
    assert "02_autoencoders" in page and "not run" in page
    assert "No verdicts yet" in page
    assert "02_autoencoders" in index.build_index("smoke").read_text()  # the index lists every notebook too
    report.write_results(run.__class__("05_statistics", "smoke", 0, run.device), "05", [],
                         verdicts=[{"claim": "on > off", "dataset": "mnist", "split": "test", "statistic": "Wilcoxon",
                                    "effect_text": "3.1x [2.8, 3.5]", "p_holm": 1e-9, "n": 200, "power": 1.0,
                                    "verdict": "explained by dimension alone"}])
    index.build_index("smoke")
    page = (tmp_reports / "smoke" / "verdicts.html").read_text()
    assert page.index("Verdicts") < page.index("Notebooks") and "explained by dimension alone" in page


def test_bad_common_parameters():
    with pytest.raises(ValueError, match="profile must be one of"):
        runtime.start("x", "fast")
    with pytest.raises(ValueError, match="device must be"):
        runtime.pick_device("tpu")


def test_index_leads_with_the_answer_figure_and_deciding_claims(tmp_reports):
    from lib.reporting import fingerprint, state

    run = runtime.Run("05_statistics", "smoke", 0, runtime.pick_device("cpu"))
    page = index.build_index("smoke").read_text()
    assert "statistics notebook has not run" in page
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    (tmp_reports / "smoke" / "results").mkdir(parents=True, exist_ok=True)
    (tmp_reports / "smoke" / "results" / "answer.png").write_bytes(png)
    verdict = {
        "claim_id": "3",
        "short": "3 gap: tangent > random",
        "claim": "3: gap beyond dimension",
        "dataset": "mnist",
        "split": "test",
        "clip": True,
        "statistic": "sign test",
        "effect_text": "1.02x [0.97, 1.08]",
        "margin_text": "×/÷ 1.1",
        "p_margin_holm": 0.4,
        "n": 200,
        "power": 0.9,
        "verdict": "explained by dimension alone",
        "family": "05 · attacks",
    }
    report.write_results(
        run,
        "05 · Statistics",
        [],
        answer=["On MNIST the on/off gap is what dimension alone predicts."],
        answer_figure="answer.png",
        discriminating=[verdict],
        verdicts=[verdict],
    )
    root = tmp_reports / "smoke"
    assert "no answer is shown" in index.build_index("smoke").read_text()  # no finished run recorded
    fingerprint.save(root, "05_statistics", fingerprint.with_digest({"params": {}}))
    page = index.build_index("smoke").read_text()
    import base64
    positions = [page.index(s) for s in ("<h1>", 'class="lead"', "on MNIST the deciding claim is explained by "
                                         "dimension alone", "data:image/png;base64,"
                                         + base64.b64encode(png).decode()[:20], "The verdicts at a glance",
                                         "what dimension alone predicts", "<h2>Notebooks")]
    assert positions == sorted(positions)
    verdict_page = (root / "verdicts.html").read_text()
    assert 'class="scroll"' in verdict_page and "overflow-x:auto" in verdict_page and "max-width:100%" in verdict_page
    assert "05 · attacks" in verdict_page and "×/÷ 1.1" in verdict_page and "negligible band" in verdict_page
    assert all(v in verdict_page for v, _ in verdicts.RULES)  # every rule stated where the verdicts are
    state.mark(root, "05_statistics", "queued")
    page = index.build_index("smoke").read_text()
    assert "what dimension alone predicts" not in page and "is queued to run again" in page


def test_headlines_carry_intervals_and_readings(tmp_reports):
    """Accuracies with Wilson intervals, an AUC with its interval and how to read it below 0.5, no raw inf / nan."""
    from lib.inference import stats
    from lib.studies.curvature import curvature_analysis

    run = runtime.Run("06_curvature", "smoke", 0, runtime.pick_device("cpu"))
    auc = report.headline("mnist: detection AUC", 0.31, "", ci=(0.2, 0.45), note=curvature_analysis.auc_reading(0.31))
    report.write_results(run, "06", [report.proportion("mnist test accuracy", 97, 100), auc])
    lo, hi = stats.wilson_ci(97, 100)
    index.build_index("smoke")
    page = (tmp_reports / "smoke" / "verdicts.html").read_text()
    assert f"mnist test accuracy: <b>97.00% [{100 * lo:.2f}%, {100 * hi:.2f}%]</b>" in page
    assert (
        "mnist: detection AUC: <b>0.31 [0.2, 0.45]</b>" in page and "below 0.5: the score points the wrong way" in page
    )
    assert "0.5 is chance" in curvature_analysis.auc_reading(0.7)
    assert report.number(float("inf")) == "> budget (most attacks failed)" and report.number(float("nan")) == "–"
    assert report.number(1.234) == "1.23"


def test_messages_are_shown_as_written_and_interrupts_read_whole():
    import mistune

    shown = mistune.html(
        "> **imagenet: data not available.** " + runtime.escape("under d/imagenet2/train/<wnid>/ a_b*")
    )
    assert "d/imagenet2/train/&lt;wnid&gt;/ a_b*" in shown
    assert execute.one_line(KeyboardInterrupt()) == "interrupted (Ctrl-C)"

    class CellInterrupt(Exception):
        ename, evalue, exec_count = "KeyboardInterrupt", "", 7

    assert execute.one_line(CellInterrupt()) == "interrupted in cell [7]"
    assert execute.one_line(RuntimeError("")) == "RuntimeError"


def test_index_answers_every_question_and_states_the_caveats(tmp_reports):
    """Beside 05's answer: a paragraph per further question from that notebook's own results, a note where it has
    no finished run, and the caveats of scale the notebooks state."""
    from lib.reporting import fingerprint

    root = tmp_reports / "smoke"
    for name, extra in (
        ("05_statistics", {"answer": ["The geometry says X."]}),
        ("06_curvature", {"answer": ["The boundary is 0.9x as curved (explained by dimension alone)."]}),
        ("02_autoencoders", {"caveats": ["mnist: the autoencoder's test error is 0.012."]}),
    ):
        report.write_results(runtime.Run(name, "smoke", 0, runtime.pick_device("cpu")), name, [], **extra)
        fingerprint.save(root, name, fingerprint.with_digest({"params": {}}))
    page = index.build_index("smoke").read_text()
    assert index.QUESTIONS["06_curvature"] in page and "0.9x as curved" in page
    assert "Notebook 07 has not run" in page  # no finished run: said, not hidden
    assert "Caveats of scale" in page and "test error is 0.012" in page
    positions = [page.index(s) for s in ("Caveats of scale", "The geometry says X.", "0.9x as curved", "<h2>Notebooks")]
    assert positions == sorted(positions)  # the caveats, then every answer in full, folded under the first screens


def test_a_table_is_written_as_its_rows(tmp_path):
    import pandas as pd

    t = pd.DataFrame({"a": [1.0, float("nan")], "b": ["x", "y"]})
    out = json.loads(report.write_json_atomic({"t": t, "empty": t.iloc[:0]}, tmp_path / "r.json").read_text())
    assert out == {"t": [{"a": 1.0, "b": "x"}, {"a": None, "b": "y"}], "empty": []}
