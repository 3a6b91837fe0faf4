"""Training the classifiers and autoencoders, cached by a hash of their full configuration.

`classifier_config(dataset, **overrides)` / `autoencoder_config(...)` start from the paper's settings
(Shamir et al. 2021 and its reproduction) and change only what a profile overrides; `get_classifier(cfg, data)` and
`get_autoencoder(cfg, data)` return a trained model from the cache, training it on a miss.
"""
import time
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F

from lib.infra import cache
from lib.learn import activations, models
from lib.infra.artifacts import Artifact
from lib.learn.data import DatasetUnavailable
from lib.infra.runtime import per_dataset, progress, torch_threads


@dataclass(frozen=True)
class ClassifierConfig:
    dataset: str
    arch: str                  # mlp | convnet | resnet50 (pretrained, not trained here)
    epochs: int
    batch_size: int
    lr: float
    optimizer: str             # sgd | adam
    weight_decay: float = 0.0
    lr_milestones: tuple = ()  # epochs at which the learning rate is multiplied by lr_gamma
    lr_gamma: float = 0.1
    hflip: bool = False        # random horizontal flips (CIFAR-10)
    seed: int = 0


@dataclass(frozen=True)
class AutoencoderConfig:
    dataset: str
    arch: str                  # conv (Gropp et al.) | vgg (VGG16-style, ImageNet)
    latent_dim: int
    epochs: int
    batch_size: int
    lr: float
    plateau_factor: float = 0.0  # > 0: multiply the lr by it when the train loss has not improved ...
    plateau_patience: int = 7    # ... for this many epochs (ImageNet: x0.8 after 7)
    width: int = 32              # channels of the first conv layer (conv arch)
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0


# The paper profile (Shamir et al. 2021; the reproduction where the paper is silent). Fashion-MNIST has no published
# setting: it reuses MNIST's.
PAPER_CLASSIFIERS = {
    "mnist": ClassifierConfig("mnist", "mlp", 40, 200, 0.01, "sgd", weight_decay=1e-4),
    "fashion_mnist": ClassifierConfig("fashion_mnist", "mlp", 40, 200, 0.01, "sgd", weight_decay=1e-4),
    "cifar10": ClassifierConfig("cifar10", "convnet", 150, 200, 1e-3, "adam", lr_milestones=(80, 120), hflip=True),
    "imagenet": ClassifierConfig("imagenet", "resnet50", 0, 0, 0.0, "none"),
}
PAPER_AUTOENCODERS = {
    "mnist": AutoencoderConfig("mnist", "conv", 16, 1000, 144, 1e-3),
    "fashion_mnist": AutoencoderConfig("fashion_mnist", "conv", 16, 1000, 144, 1e-3),
    "cifar10": AutoencoderConfig("cifar10", "conv", 128, 400, 32, 1e-3),
    "imagenet": AutoencoderConfig(
        "imagenet", "vgg", 512 * 7 * 7, 325, 32, 1e-4, plateau_factor=0.8, plateau_patience=7
    ),
}


def _config(table, dataset, overrides):
    if dataset not in table:
        raise ValueError(f"dataset must be one of {', '.join(table)}; got {dataset!r}")
    names = {f.name for f in fields(table[dataset])}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; allowed: {sorted(names - {'dataset'})}")
    cfg = replace(table[dataset], **{k: v for k, v in overrides.items() if v is not None})
    for name in ("epochs", "batch_size"):
        if getattr(cfg, name) < (0 if cfg.epochs == 0 else 1):
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)}")
    if cfg.lr < 0:
        raise ValueError(f"lr must be non-negative, got {cfg.lr}")
    return cfg


def classifier_config(dataset, **overrides):
    """The paper's classifier setting for `dataset`, with the non-None `overrides` applied."""
    return _config(PAPER_CLASSIFIERS, dataset, overrides)


def autoencoder_config(dataset, **overrides):
    """The paper's autoencoder setting for `dataset`, with the non-None `overrides` applied."""
    return _config(PAPER_AUTOENCODERS, dataset, overrides)


def build_classifier(cfg, num_classes=10):
    if cfg.arch == "mlp":
        return models.mnist_mlp(cfg.dataset, num_classes=num_classes)
    if cfg.arch == "convnet":
        return models.cifar_convnet(cfg.dataset, num_classes=num_classes)
    if cfg.arch == "resnet50":
        return models.imagenet_resnet50(pretrained=True)
    raise ValueError(f"arch must be mlp, convnet or resnet50; got {cfg.arch!r}")


def build_autoencoder(cfg, shape):
    if cfg.arch == "conv":
        return models.ConvAutoencoder(shape[0], shape[1], cfg.latent_dim, cfg.width)
    if cfg.arch == "vgg":
        if shape != (3, 224, 224):
            raise ValueError(f"the vgg autoencoder takes 3x224x224 images, got {shape}")
        return models.VGGAutoencoder(shape[0])
    raise ValueError(f"arch must be conv or vgg; got {cfg.arch!r}")


def make_optimizer(model, cfg):
    """The optimizer and learning-rate schedule that `cfg` names (a schedule steps once per epoch)."""
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":  # fused: one kernel updates every parameter
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    else:
        raise ValueError(f"optimizer must be sgd or adam; got {cfg.optimizer!r}")
    if getattr(cfg, "lr_milestones", ()):
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.lr_milestones), cfg.lr_gamma)
    if getattr(cfg, "plateau_factor", 0.0) > 0:
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.plateau_factor,
                                                                patience=cfg.plateau_patience)
    return opt, None


def is_convolutional(model):
    """Whether `model` has 2-D convolutions (4-D weights)."""
    return any(p.dim() == 4 for p in model.parameters())


def memory_format(model, device):
    """The memory format `fit` trains `model` in on `device`: channels_last for a convolutional net on a CPU."""
    return torch.channels_last if torch.device(device).type == "cpu" and is_convolutional(model) else \
        torch.contiguous_format


# Torch threads of every training run. A matrix product's rounding depends on how its sums are split between threads,
# so the thread count changes the trained weights (autoencoders by up to 5e-3): fixed here, a model is the same whether
# one notebook runs at a time (`make report`, two threads per kernel on two cores) or several (`make -j2 report`), and a
# cache holds one model per configuration, whoever filled it.
TRAIN_THREADS = 1


def fit(model, x, target, loss_fn, cfg, device, desc="train", on_epoch=None, perturb=None, batch_loss=None):
    """Minibatch training on in-memory tensors with seeded batches (target=None: reconstruct x): the one training
    loop of classifiers, autoencoders, I-AEs, fine-tunes and adversarial training.

    loss_fn(model(xb), yb): the loss of a batch; or batch_loss(model, xb, generator) -> loss where the loss is not a
    function of the output alone (the I-AE's Jacobian terms; `generator` is the loop's own, seeded by cfg.seed).
    on_epoch(epoch, model): called after each epoch (1, 2, ...), e.g. to keep a copy of the weights.
    perturb(model, xb, yb) -> xb: replaces each batch before the step, the model in eval mode meanwhile (adversarial
    training: the batch's PGD examples, Madry et al. 2018).
    cfg: seed, epochs, batch_size, optimizer, lr, weight_decay (make_optimizer), and where present hflip,
    grad_clip (> 0: clip the gradient norm to it) and a schedule.
    A convolutional model trains in channels_last memory format on a CPU (with the fused Adam, 1.12x per conv-AE step:
    bench/bench_training.py) and is returned in the default format.
    Trains with TRAIN_THREADS torch threads, whatever the caller's: the weights do not depend on the parallelism.
    Returns the model in eval mode and the mean training loss of each epoch.
    """
    with torch_threads(TRAIN_THREADS):
        return _fit(model, x, target, loss_fn, cfg, device, desc, on_epoch, perturb, batch_loss)


def _fit(model, x, target, loss_fn, cfg, device, desc, on_epoch, perturb, batch_loss):
    device = torch.device(device)
    layout = memory_format(model, device)
    g = torch.Generator().manual_seed(cfg.seed)
    model.to(device, memory_format=layout).train()
    opt, sched = make_optimizer(model, cfg)
    clip = getattr(cfg, "grad_clip", 0.0)
    history = []
    for epoch in (bar := progress(range(1, cfg.epochs + 1), desc=desc, leave=False)):
        perm, total = torch.randperm(len(x), generator=g), 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            xb = x[idx].to(device)
            if getattr(cfg, "hflip", False):
                flip = (torch.rand(len(idx), generator=g) < 0.5).to(device)
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
            yb = xb if target is None else target[idx].to(device)
            if perturb is not None:
                xb = perturb(model.eval(), xb, yb)
                model.train()
            xb = xb.contiguous(memory_format=layout)
            loss = loss_fn(model(xb), yb) if batch_loss is None else batch_loss(model, xb, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(x))
        bar.set_postfix(loss=f"{history[-1]:.4g}")
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(history[-1])
        elif sched is not None:
            sched.step()
        if on_epoch is not None:
            on_epoch(epoch, model)
    return model.to(memory_format=torch.contiguous_format).eval(), history


@torch.no_grad()
def predict(model, x, device="cpu", batch_size=1000, desc="predict"):
    """The arg-max class of every image (model in eval mode), a batch at a time, on the CPU."""
    model.eval()
    batches = progress(range(0, len(x), batch_size), desc=desc, unit="batch", leave=False)
    return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in batches]) if len(x) else \
        torch.zeros(0, dtype=torch.long)


def accuracy(model, x, y, device, batch_size=1000):
    """Share of images whose arg-max logit is the label (model in eval mode)."""
    return (predict(model, x, device, batch_size, "accuracy") == y).sum().item() / len(x)


@torch.no_grad()
def reconstruction_mse(ae, x, device, batch_size=500):
    """Mean squared error per pixel of D(E(x)) against x, in [0, 1] pixel scale."""
    ae.eval()
    batches = progress(range(0, len(x), batch_size), desc="reconstruction MSE", unit="batch", leave=False)
    total = sum(F.mse_loss(ae(x[i:i + batch_size].to(device)), x[i:i + batch_size].to(device),
                           reduction="sum").item() for i in batches)
    return total / x.numel()


# What defines a trained model (lib.infra.artifacts): its key hashes the configuration and the version.
TRAINING_CODE = (models, activations, ClassifierConfig, AutoencoderConfig, build_classifier, build_autoencoder,
                 make_optimizer, is_convolutional, memory_format, fit, _fit)
# Version 3 of the autoencoders: lib.learn.activations' Softplus (the same function, other float rounding).
ARTIFACTS = {kind: Artifact(kind, {"classifier": 2, "autoencoder": 3}[kind], TRAINING_CODE)
             for kind in ("classifier", "autoencoder")}


@dataclass
class Trained:
    model: torch.nn.Module
    meta: dict     # config, training data, loss per epoch, seconds
    cached: bool   # True when it came from the cache
    key: str = ""  # its cache key: identifies the model in the keys of work done with it
    train_data: object = None  # the Data it was trained on (its training images: a subset where one was asked for)

    def summary(self):
        return "loaded from the cache" if self.cached else f"trained in {self.meta['train_seconds']:.0f} s"


MONITOR_IMAGES = 2000  # the first this many test images measure a model after every epoch of its training


def kept_epochs(epochs):
    """The epochs before the last at which a training run keeps a checkpoint: 1, 2, 5, 10, 20, 50, ... (log-spaced;
    the last epoch is the model itself). Notebook 06 follows the classifier's geometry over them, notebook 11 the
    claims over the classifier's and the autoencoder's."""
    out, decade = [], 1
    while decade < epochs:
        out += [e for e in (decade, 2 * decade, 5 * decade) if e < epochs]
        decade *= 10
    return out


def checkpoint_key(kind, cfg, data, epoch):
    """The cache key of the checkpoint after `epoch` of the model `cfg` trains on `data` (an entry of `kind`, so that
    load_trained and a distributed worker read it as they read the model)."""
    return ARTIFACTS[kind].key({kind: asdict(cfg), "data": data.identity(), "checkpoint_epoch": int(epoch)})


def _cached_model(kind, cfg, data, make, train, device, monitor):
    """The model `make()` with weights from the cache, or trained by `train(model, on_epoch)` and stored.

    The key hashes the configuration, the exact training data and the artifact's version. `monitor(model, x, y)` is
    measured on the first MONITOR_IMAGES test images after every epoch (the model back in train mode after it; its
    weights untouched) and kept as meta["test_history"]: the curve a profile's epochs are chosen from. The final test
    figures are not stored: callers measure them on the data they hold. After each of kept_epochs(cfg.epochs) the
    weights are stored too, as an entry of their own (checkpoint_key; lib.learn.checkpoints reads them): the same
    training keeps them, so a model and its checkpoints never come from two runs.
    """
    def build():
        torch.manual_seed(cfg.seed)
        t0, tests = time.time(), []
        x, y = data.test_x[:MONITOR_IMAGES], data.test_y[:MONITOR_IMAGES]
        keep = set(kept_epochs(cfg.epochs))

        def meta_now(**more):  # the model's meta as it stands: the final one, or a checkpoint's
            return {"config": asdict(cfg), "data_source": data.describe(), "data_id": data.identity(),
                    "n_train": len(data.train_x), "train_seconds": time.time() - t0, "test_history": list(tests),
                    "n_monitor": len(x), **more}

        def on_epoch(epoch, model):
            tests.append(monitor(model, x, y))
            model.train()
            if epoch in keep:
                state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
                ckey = checkpoint_key(kind, cfg, data, epoch)
                cache.save_atomic({"key": ckey, "state_dict": state, "meta": meta_now(checkpoint_epoch=epoch)},
                                  cache.entry_path(kind, ckey))

        model, history = train(make(), on_epoch)
        return {k: v.cpu() for k, v in model.state_dict().items()}, meta_now(history=history)

    key = ARTIFACTS[kind].key({kind: asdict(cfg), "data": data.identity()})
    entry, hit = cache.cached(kind, key, build)
    model = make()
    model.load_state_dict(entry["state_dict"])
    return Trained(model.to(device).eval(), entry["meta"], hit, key, data)


class ModelNotCached(FileNotFoundError):
    """A model a distributed worker needs is not in the cache it reads (workers load models, never train)."""


def config_from(kind, config):
    """The ClassifierConfig / AutoencoderConfig (kind: classifier | autoencoder) of a stored config dict (the
    asdict in Trained.meta["config"]; a stored tuple may come back as a list)."""
    cls = {"classifier": ClassifierConfig, "autoencoder": AutoencoderConfig}[kind]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


def continued(clf, epochs, lr, seed):
    """The ClassifierConfig that trains the classifier `clf` (a Trained) further: its own optimiser and batch size,
    `epochs` more epochs at `lr`, no schedule (a fine-tune, adversarial training)."""
    return replace(config_from("classifier", clf.meta["config"]), epochs=epochs, lr=lr, lr_milestones=(), seed=seed)


def continued_on(clf, epochs, lr, seed, train_subset=None):
    """(ClassifierConfig, Data) to train the classifier `clf` further (`continued`) on a seeded random `train_subset` of
    the images it was trained on (None: all of them)."""
    return continued(clf, epochs, lr, seed), clf.train_data.subset(train_subset, None, seed)


def load_trained(kind, key, config, shape, num_classes=10, device="cpu", root=None):
    """The model stored under `key` (kind: classifier | autoencoder), rebuilt from `config` (the asdict of its
    ClassifierConfig / AutoencoderConfig, as in Trained.meta["config"]) with the stored weights.

    For work that runs away from the notebook (a dask worker): it reads the cache under `root` (default
    cache_dir()) and never trains; a missing entry raises ModelNotCached saying what to run first.
    The pretrained ResNet-50 is not a cache entry: torchvision's own cache holds its weights."""
    cfg = config_from(kind, config)
    if kind == "classifier" and cfg.arch == "resnet50":
        return build_classifier(cfg).to(device).eval()
    entry = cache.lookup(kind, key, root)
    if entry is None:
        raise ModelNotCached(
            f"the {kind} {key} ({cfg.dataset}, {cfg.arch}) is not in the cache "
            f"{cache.entry_path(kind, key, root).parent}: train it first (notebooks 01 and 02) with the cache where "
            "the workers read it; a worker does not train"
        )
    return model_from_entry(kind, cfg, entry, shape, num_classes).to(device).eval()


def model_from_entry(kind, cfg, entry, shape, num_classes=10):
    """The network of `cfg` (a ClassifierConfig / AutoencoderConfig; kind: classifier | autoencoder) with the weights
    of the cache entry `entry` (a model's or a checkpoint's)."""
    model = build_classifier(cfg, num_classes) if kind == "classifier" else build_autoencoder(cfg, shape)
    model.load_state_dict(entry["state_dict"])
    return model


def get_classifier(cfg, data, device="cpu"):
    """A classifier trained with `cfg` on `data.train_x` (from the cache if there)."""
    device = torch.device(device)
    if cfg.arch == "resnet50":  # pretrained: not trained here; torchvision caches the weights itself
        meta = {"config": asdict(cfg), "data_source": "ImageNet-1k (torchvision's IMAGENET1K_V2 weights)",
                "n_train": 0, "train_seconds": 0.0, "history": []}
        try:
            model = build_classifier(cfg)
        except (RuntimeError, OSError) as err:  # offline, with no copy in torch's hub cache
            raise DatasetUnavailable(
                "the ResNet-50 weights IMAGENET1K_V2 could not be loaded: run once online so that torchvision "
                f"caches them under ~/.cache/torch/hub/checkpoints ({str(err).splitlines()[0][:160]})") from err
        return Trained(model.to(device).eval(), meta, cached=True, key="resnet50-IMAGENET1K_V2", train_data=data)
    train = lambda m, on_epoch: fit(m, data.train_x, data.train_y, F.cross_entropy, cfg, device,
                                    f"{cfg.dataset} classifier", on_epoch=on_epoch)
    return _cached_model("classifier", cfg, data, lambda: build_classifier(cfg, data.num_classes), train, device,
                         lambda m, x, y: accuracy(m, x, y, device))


def get_autoencoder(cfg, data, device="cpu"):
    """An autoencoder trained with `cfg` on `data.train_x` (from the cache if there)."""
    device = torch.device(device)
    train = lambda m, on_epoch: fit(m, data.train_x, None, F.mse_loss, cfg, device, f"{cfg.dataset} autoencoder",
                                    on_epoch=on_epoch)
    return _cached_model("autoencoder", cfg, data, lambda: build_autoencoder(cfg, data.shape), train, device,
                         lambda m, x, y: reconstruction_mse(m, x, device))


def classifier_setup(data, seed, epochs=None, train_subset=None, lr=None):
    """(ClassifierConfig, training Data) of the profile's shared settings (params `all`) for `data`: what notebook 01
    trains on what. epochs / train_subset / lr: a value, {dataset: value} or None (the paper's / all images)."""
    cfg = classifier_config(data.name, epochs=per_dataset(epochs, data.name), lr=per_dataset(lr, data.name), seed=seed)
    return cfg, data.subset(per_dataset(train_subset, data.name), None, seed)


def classifier_for(data, seed, device="cpu", epochs=None, train_subset=None, lr=None):
    """The classifier of the profile's shared settings for `data` (classifier_setup): what notebook 01 trained."""
    return get_classifier(*classifier_setup(data, seed, epochs, train_subset, lr), device)


def autoencoder_for(data, seed, device="cpu", epochs=None, train_subset=None, latent_dim=None, width=None):
    """The autoencoder of the profile's shared settings for `data`: what notebook 02 trained."""
    cfg = autoencoder_config(data.name, epochs=per_dataset(epochs, data.name),
                             latent_dim=per_dataset(latent_dim, data.name), width=width, seed=seed)
    return get_autoencoder(cfg, data.subset(per_dataset(train_subset, data.name), None, seed), device)
