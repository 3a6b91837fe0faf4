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


def marks(table, datasets, fmt="{:.2%}"):
    """[(label, value)] of the published test figures of `datasets` in `table` (a (train, test) pair: its test
    figure), for a figure's reference lines: 'mnist, Shamir et al. 2021: 98.00%'."""
    out = []
    for name in datasets:
        for src, v in table.get(name, {}).items():
            v = v[1] if isinstance(v, tuple) else v
            if v is not None:
                out.append((f"{name}, {src}: {fmt.format(v)}", v))
    return out


def describe(table, dataset, fmt="{:.2%}"):
    """'98.00% (Shamir et al. 2021); 96.35% (reproduction)' or 'none published'."""
    def show(v):
        return " / ".join("–" if x is None else fmt.format(x) for x in v) if isinstance(v, tuple) else fmt.format(v)

    entries = table.get(dataset, {})
    return "; ".join(f"{show(v)} ({src})" for src, v in entries.items()) or "none published"


# Projection defences (and the adversarial-training reference) after a standard or adaptive attack, as published:
# robust accuracy in % of test images. AutoAttack's figures: the standard AutoAttack evaluation (APGD-CE, APGD-T,
# FAB-T, Square, 5,000 queries) on the full MNIST test set, from Croce & Hein 2020 ("Reliable evaluation of
# adversarial robustness with an ensemble of diverse parameter-free attacks", ICML; the table of its public
# repository, fra31/auto-attack). Defense-GAN: Athalye, Carlini & Wagner 2018 ("Obfuscated gradients give a false
# sense of security", ICML), Table 1; their L2 distance is normalised by the image size, so 0.005 is not our ε.
PROJECTION_DEFENCES = [
    # (defence, kind, data set, threat model, clean %, reported %, after the standard attack %, attack, source)
    ("Kernelized manifold mapping (Taghanaki et al. 2019)", "projection onto a learned manifold", "MNIST",
     "L-inf, ε = 0.3", 98.86, 64.25, 0.00, "AutoAttack", "Croce & Hein 2020"),
    ("Adversarial training (Madry et al. 2018)", "adversarial training (no projection)", "MNIST",
     "L-inf, ε = 0.3", 98.53, 89.62, 88.50, "AutoAttack", "Croce & Hein 2020"),
    ("Defense-GAN (Samangouei et al. 2018)", "projection onto a GAN's range", "MNIST",
     "L2, 0.005 (normalised; Athalye et al.'s units)", None, None, 55.0,
     "BPDA / adaptive (the principle: 0%, Athalye et al. section 5.4.2)", "Athalye, Carlini & Wagner 2018"),
]
PROJECTION_COLUMNS = ["defence", "kind", "data set", "threat model", "clean %", "reported %",
                      "after the standard attack %", "attack", "source"]


def projection_defences():
    """PROJECTION_DEFENCES as a table (pandas DataFrame, PROJECTION_COLUMNS); None where a paper gives no figure."""
    import pandas as pd

    return pd.DataFrame(PROJECTION_DEFENCES, columns=PROJECTION_COLUMNS)


# Ilyas et al. 2019, "Adversarial examples are not bugs, they are features", Table 1: test accuracy (true labels,
# clean test set) of a classifier trained on the original set D or on the relabelled D_rand / D_det (targeted L2 PGD,
# CIFAR-10 eps = 0.5; ResNet-50). Another data set and architecture than ours: shown beside, never compared.
ILYAS = "Ilyas et al. 2019 (CIFAR-10, ResNet-50)"
ILYAS_TEST_ACC = {"original": 0.953, "D_rand": 0.633, "D_det": 0.437}

# Bordt, Upadhyay, Akata & von Luxburg 2023: mean ||P_T g|| / ||g|| on a known manifold (VAE images, d = 1024,
# k = 10): a random vector 0.096, a standard LeNet 0.312, L2 adversarially trained 0.675.
BORDT = "Bordt et al. 2023 (known manifold, d = 1024, k = 10)"
BORDT_FRACTION = {"random vector": 0.096, "standard": 0.312, "adversarially trained": 0.675}
