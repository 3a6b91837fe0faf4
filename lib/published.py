"""The published numbers the report compares with (Shamir et al. 2021 and the
reproduction "The Dimpled Manifold Revisited"), labelled by source.

These are references, never results: every figure the report claims comes from code run in it.
"""
SHAMIR = "Shamir et al. 2021"
REPRO = "Karner 2023 (reproduction)"

CLASSIFIER_TEST_ACC = {  # dataset -> {source: test accuracy}
    "mnist": {SHAMIR: 0.98, REPRO: 0.9635},
    "fashion_mnist": {},
    "cifar10": {SHAMIR: 0.93, REPRO: 0.934},
    "imagenet": {"torchvision IMAGENET1K_V2 (1,000 classes)": 0.80858},
}
CLASSIFIER_TRAIN_ACC = {"mnist": {REPRO: 0.9685}, "cifar10": {REPRO: 1.0}}

AUTOENCODER_MSE = {  # dataset -> {source: (train MSE, test MSE)}, None where not reported
    "mnist": {SHAMIR: (None, 0.00003), REPRO: (0.00017, 0.007)},
    "fashion_mnist": {},
    "cifar10": {REPRO: (0.0003, 0.0079)},
    "imagenet": {REPRO: (0.0018, 0.0043)},
}


def describe(table, dataset, fmt="{:.2%}"):
    """'98.00% (Shamir et al. 2021); 96.35% (reproduction)' or 'none published'."""
    def show(v):
        return " / ".join("–" if x is None else fmt.format(x) for x in v) if isinstance(v, tuple) else fmt.format(v)

    entries = table.get(dataset, {})
    return "; ".join(f"{show(v)} ({src})" for src, v in entries.items()) or "none published"
