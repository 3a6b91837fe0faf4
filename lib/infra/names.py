"""The names the report's parameters and its code share, each defined once here (no torch: lib.reporting.params
checks parameter values against them before any kernel starts)."""

DATASETS = ("mnist", "fashion_mnist", "cifar10", "imagenet")
SPLITS = ("test", "train")
CONDITIONS = ("unconstrained", "on", "off")  # the greedy PGD attacks: plain; gradient projected onto / off a subspace
CONTROL_SUBSPACES = ("coordinate", "random", "pca")  # random subspaces of the tangent space's dimension k (notebook 04)
SUBSPACES = ("tangent",) + CONTROL_SUBSPACES         # every subspace an "on"/"off" attack may be projected onto
RELABELLINGS = ("rand", "det")                       # notebook 10's relabelled sets: D_rand, D_det (Ilyas et al. 2019)
VARIANTS = ("unconstrained", "on", "off", "random")  # notebook 10: where a targeted perturbation may go
BUDGET_NAMES = ("minimal",)  # notebook 10: a budget that is not a number (each image's first crossing)
JOBS_ENV = (
    "DIMPLED_JOBS"  # how many notebooks `make -jN report` runs at once (lib.reporting.pipeline sets it per kernel)
)
TAU2_METHODS = ("dl", "pm")  # between-seed variance: DerSimonian-Laird, Paule-Mandel (notebook 09)

# A data set as a reader writes it (pages, sentences, figure titles).
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "imagenet": "ImageNet"}
