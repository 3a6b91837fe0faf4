"""The index's first screens: the sentence follows the verdicts (a flipped verdict changes it), the grid links every
deciding cell to its row, verdicts.html filters, and the page checker sees what a reader would."""
import copy
import json
import re

from lib.reporting import fingerprint, front, index, page_check, report


def _row(cid, short, ds, verdict, split="test", clip=True, discriminating=True):
    return {"claim_id": cid, "short": short, "dataset": ds, "split": split, "clip": clip, "verdict": verdict,
            "effect_text": "0.47× [0.45, 0.51] (95% CI)", "discriminating": discriminating, "family": "x"}


def results():
    deciding = [_row(c, s, ds, "contradicted") for ds in ("mnist", "fashion_mnist")
                for c, s in (("3", "3 gap"), ("4", "4 share"), ("5", "5 cosine"))]
    return {
        "05_statistics": {"discriminating": deciding + [_row("3", "3 gap", "mnist", "contradicted", clip=False)],
                          "verdicts": deciding},
        "07_isometric_autoencoder_defence": {"checklist": [{"check": front.AUTOATTACK_CHECK, "pass": True}] * 4,
                                             "verdicts": []},
        "08_known_manifolds": {"turning_points": [{"claim_id": "3", "s measured": 9.0},
                                                  {"claim_id": "4", "s measured": 8.0}],
                               "false_positives": [{"claim_id": "3", "worlds": 12, "supported": 0},
                                                   {"claim_id": "1", "worlds": 12, "supported": 12}],
                               "verdicts": []},
        "09_replication": {"seeds": [0, 1, 2], "verdicts": [_row("3", "3 gap", "mnist", "contradicted"),
                                                            _row("4", "4 share", "mnist", "contradicted")]},
    }


def test_the_sentence_says_what_the_verdicts_say_and_changes_when_one_flips():
    r = results()
    said = front.sentence(r)
    assert "on MNIST and Fashion-MNIST all 3 deciding claims are contradicted (the effect points the other way)" in said
    assert "replicate over 3 training seeds (MNIST: 2 of 2" in said
    assert "supported from steepness s = 9" in said and "never where it is not (0 of 12 null worlds)" in said
    assert "as strong as AutoAttack (4 of 4" in said
    assert said.count(". ") <= 1  # two sentences at most

    flipped = copy.deepcopy(r)
    flipped["05_statistics"]["discriminating"][0]["verdict"] = "supported"  # MNIST's claim 3 (clipped, test)
    now = front.sentence(flipped)
    assert now != said and "on MNIST of the 3 deciding claims, 2 contradicted" in now and "1 supported" in now
    assert "on Fashion-MNIST all 3 deciding claims are contradicted" in now
    assert "only 1 of 2 deciding verdicts replicate" in now  # 09's pooled verdict no longer agrees with 05's

    for nb, change, words in (
        ("08_known_manifolds", lambda x: x["turning_points"][0].update({"s measured": float("nan")}),
         "did not find DMM in every world"),
        ("08_known_manifolds", lambda x: x["false_positives"][0].update({"supported": 2}), "but also in 2 of 12"),
        ("07_isometric_autoencoder_defence", lambda x: x["checklist"].append({"check": front.AUTOATTACK_CHECK,
                                                                             "pass": False}),
         "weaker than AutoAttack in 1 of 5"),
    ):
        other = copy.deepcopy(r)
        change(other[nb])
        assert words in front.sentence(other)
    assert "not yet run (notebook 09)" in front.sentence({**r, "09_replication": None})
    assert "has not finished" in front.sentence({})


def _finished(root, name, **extra):
    from lib.infra import runtime

    report.write_results(runtime.Run(name, "smoke", 0, runtime.pick_device("cpu")), name, [], **extra)
    fingerprint.save(root, name, fingerprint.with_digest({"params": {}}))


def test_the_grid_links_each_deciding_cell_to_its_row_and_the_verdict_page_filters(tmp_reports):
    root = tmp_reports / "smoke"
    r = results()
    deciding = r["05_statistics"]["discriminating"]
    _finished(root, "05_statistics", answer=["The geometry says X."], discriminating=deciding, verdicts=deciding)
    _finished(root, "06_curvature", answer=["Curved."], verdicts=[_row("06a", "06a flat", "mnist", "contradicted",
                                                                       discriminating=False)])
    page = index.build_index("smoke").read_text()
    verdict_page = (root / "verdicts.html").read_text()
    targets = re.findall(r'href="verdicts\.html#([^"]+)"', page)
    assert len(targets) == 6 and all(f'id="{t}"' in verdict_page for t in targets)  # 3 claims x 2 data sets
    assert len(set(targets)) == 6  # the clipped rows, each its own
    assert "<th>MNIST<br>" in page and "Fashion-MNIST" in page and "fashion_mnist<" not in page
    assert 'href="verdicts.html?nb=06"' in page and "1 contradicted" in page  # a line per further question
    positions = [page.index(s) for s in ('class="lead"', "The verdicts at a glance", "How far from DMM",
                                         "Each question's answer in full", "<h2>Notebooks")]
    assert positions == sorted(positions)
    assert 'id="f-nb"' in verdict_page and 'id="f-ds"' in verdict_page and 'id="f-v"' in verdict_page
    assert 'data-nb="06"' in verdict_page and 'data-ds="MNIST"' in verdict_page and "applyFilter" in verdict_page
    assert not page_check.leaks(page) and not page_check.leaks(verdict_page)


def test_the_page_checker_reads_what_a_reader_reads():
    code = '<div class="jp-InputArea"><pre>x = {\'eps\': float("nan")}</pre></div>'
    assert page_check.leaks(code + "<p>L-inf, ε = 0.3; 12.5%</p><script>var a = {'b': NaN};</script>") == []
    found = {w for w, _ in page_check.leaks("<p>world 3: {'accuracy': 0.61}</p><td>nan</td><td>inf</td>"
                                           "<pre>Traceback (most recent call last)</pre><p>tensor([1.])</p>")}
    assert found == {"a Python dict", "nan", "inf", "a traceback", "an array's repr"}
    assert json.dumps(page_check.visible_text("<p>a&amp;b</p>")) == '"a&b"'


def test_the_distance_figure_is_drawn_from_08_and_11_and_not_again_while_they_stand(tmp_path):
    curve = {"analytic": {"3": [[1.0, 0.14], [10.0, 1.4]], "4": [[1.0, 20.0], [10.0, 0.5]]},
             "measured": [{"claim_id": "3", "s": 9.0, "effect": 1.3, "ci_low": 1.2, "ci_high": 1.4,
                           "verdict": "supported"}]}
    dist = [{"dataset": "mnist", "claim_id": c, "s": 3.4, "low": 3.2, "high": 3.6, "effect": 0.47, "needed": 7.8}
            for c in ("3", "4")]
    results = {front.KNOWN: {"power_curve": curve}, front.QUALITY: {"distance": dist}}
    path = tmp_path / "index_distance.png"
    assert front.distance_figure(results, path) and path.read_bytes()[:4] == b"\x89PNG"
    path.write_bytes(b"kept")  # not drawn again from the same numbers
    assert front.distance_figure(results, path) and path.read_bytes() == b"kept"
    dist[0]["s"] = 3.5
    assert front.distance_figure(results, path) and path.read_bytes()[:4] == b"\x89PNG"
    assert not front.distance_figure({front.KNOWN: {"power_curve": curve}}, tmp_path / "other.png")
    assert "MNIST's networks behave like a dimpled world of steepness s = 3.5 [3.2, 3.6] by claim 3" in \
        " ".join(front.distance_words(results))
