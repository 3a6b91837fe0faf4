"""Notebook 10's budget sweep on the page (lib.studies.training.mislabeled_study computes it): per data set, the
training images' norm and what the sizes cost, the sweep figure, the examples grid, the table and the visibility
check in words."""
from IPython.display import display

from lib.figures import plots_training
from lib.inference import published
from lib.infra import runtime
from lib.studies.training import mislabeled_study

PCT = "{:.1%}"
COLUMNS = {"relabelling": "relabelling", "budget_text": "budget", "training set": "training set",
           "success rate": "success rate", "median norm": "median norm", "norm q1": "norm q1", "norm q3": "norm q3",
           "looks like t: means": "called t: class mean", "looks like t: judge": "called t: independent classifier",
           "trained on": "trained on", "seeds": "seeds", "test accuracy": "test accuracy", "CI low": "CI low",
           "CI high": "CI high", "mean accuracy": "mean accuracy", "seed spread": "seed spread"}
FORMATS = {"success rate": PCT, "median norm": "{:.2f}", "norm q1": "{:.2f}", "norm q3": "{:.2f}",
           "called t: class mean": PCT, "called t: independent classifier": PCT, "test accuracy": PCT,
           "CI low": PCT, "CI high": PCT, "mean accuracy": PCT, "seed spread": PCT}


def show(study, table, data, name, min_success):
    """One data set's sweep (``study``: mislabeled_study.run_study; ``table``: its sweep_table rows): the training
    images' median norm beside the budgets, the training-set size and the test set's interval width, the detectors'
    accuracy on the clean images, Ilyas et al.'s figures (another data set), the sweep figure, the examples, the table
    and the visibility sentences."""
    image_norm = float(data.train_x.flatten(1).norm(dim=1).median())
    runtime.show(f"**{name}**: a training image's median L2 norm is {image_norm:.2f}. "
                 + mislabeled_study.cost_note(table, study)
                 + f" On the clean attacked images the independent classifier is right {study['baseline']['judge']:.1%}"
                 f" of the time, the nearest class mean {study['baseline']['means']:.1%}. Published beside ours "
                 f"(**another data set, network and budget scale**, for orientation only): {published.ILYAS} at "
                 "ε = 0.5: " + ", ".join(f"{k} {v:.1%}" for k, v in published.ILYAS_TEST_ACC.items()))
    plots_training.budget_sweep(table, study["budgets"], study["judged"], image_norm,
                                f"{name}: mislabelled training against the budget", min_success)
    plots_training.sweep_examples(study, data.classes, name)
    display(table[list(COLUMNS)].rename(columns=COLUMNS).style.format(FORMATS, na_rep="–").hide(axis="index"))
    for sentence in mislabeled_study.visibility_words(table):
        runtime.show(sentence)
