"""One shard of an attack condition: a plain, picklable description, and running it wherever it lands.

lib.experiments.experiment splits the N images of a condition into shards of a few images. Each shard is one cache
entry, so an interrupted run keeps the shards it finished and a re-run computes only the others. A
ShardTask names everything by value or by key (strings, numbers, lists, small frozen dataclasses: the
classifier and autoencoder by cache key and config, the data set by name and identity, the images by id),
never a model or a tensor, so that it can go to a dask worker in another process or on another machine.
`run_shard(task)` then loads what it needs from the cache and data folders the task names, attacks, and
writes the shard's entry itself; in the notebook's own process `run_shard(task, local)` takes the objects
the caller already holds instead of loading them again.

An image's outcome depends only on the image, the models, the settings and the subspace drawn for it
(random controls from (seed, image id): lib.geometry.subspaces.image_generator), never on the shard that holds it.
ATTACKS (lib.infra.artifacts) names the code that defines that outcome and the version that enters every shard's key.
"""
from dataclasses import dataclass, field, replace

import torch

from lib.boundary import attacks
from lib.geometry import manifold, subspaces
from lib.infra import cache
from lib.learn import train
from lib.infra.artifacts import Artifact
from lib.learn import data as data_lib
from lib.infra.runtime import pick_device


@dataclass(frozen=True)
class AttackSettings:
    """PGD settings, in [0, 1] pixel scale."""

    eps: float               # L2 budget
    alpha: float             # step length
    steps: int               # iterations before the attack counts as failed
    loss: str = "margin"     # margin | ce
    clip: bool = True        # keep x + delta in [0, 1]
    refine_steps: int = 12   # bisections on the last step


@dataclass(frozen=True)
class ModelRef:
    """A trained model by its cache key and configuration (lib.learn.train.Trained .key and .meta["config"]);
    config None: a model that exists only in the caller's process (one made in a test)."""

    kind: str      # classifier | autoencoder
    key: str
    config: dict | None = None


@dataclass(frozen=True)
class PCAImages:
    """The training images a PCA control is computed from, by description: data set `dataset` (identity
    `data_identity`), `subset` of its training images drawn with `seed` (lib.learn.data.Data.subset; None: all);
    `identity`: a hash of those images, checked wherever they are drawn again."""

    dataset: str
    data_identity: str
    subset: int | None
    seed: int
    identity: str


def pca_identity(images):
    """PCAImages.identity of the training images a PCA control is computed from: their count and a hash."""
    return f"pca-of-{len(images)}-{cache.hash_tensor(images)}"


@dataclass(frozen=True)
class SubspaceSpec:
    """A subspace to build at the attacked images, declared: what identifies it in a cache key (kind, k,
    identity) and what a worker builds it from (the autoencoder, the seed of a random draw, the PCA images).
    `local` holds objects the caller already has (not sent to workers, not compared)."""

    kind: str                           # tangent | coordinate | random | pca
    k: int
    identity: str                       # e.g. the autoencoder's cache key, or the seed of a random draw
    seed: int = 0                       # coordinate / random: draws from (seed, image id)
    autoencoder: ModelRef | None = None  # tangent
    pca: PCAImages | None = None         # pca
    local: dict = field(default_factory=dict, compare=False, repr=False)

    def declared(self):
        """This spec without its local objects: what a task carries."""
        return replace(self, local={})


@dataclass(frozen=True)
class ShardTask:
    """One condition on a few images, as plain data (see the module docstring)."""

    key: str                 # the shard's cache key: attacks/<key>.pt under cache_dir
    cache_dir: str           # where the models are read and the shard is written
    data_root: str | None    # lib.learn.data.load's root (None: the worker's $DIMPLED_DATA)
    dataset: str
    data_identity: str       # lib.learn.data.Data.identity() of the data set the images come from
    split: str               # train | test
    image_ids: tuple         # indices into the split
    images_hash: str         # cache.hash_tensor of those images: a worker with other data refuses
    classifier: ModelRef
    condition: str           # unconstrained | on | off
    settings: AttackSettings
    subspace: SubspaceSpec | None
    device: str = "auto"


def input_gradient(model, x, y, loss="margin"):
    """Gradient of the attack's loss w.r.t. the clean images (what the first PGD step follows)."""
    x = x.detach().requires_grad_(True)
    fn = attacks.margin_loss if loss == "margin" else attacks.ce_loss
    return torch.autograd.grad(fn(model(x), y), x)[0]


def build_subspace(spec, x, ids, ae=None, pca_images=None):
    """The subspace `spec` declares at the images x with data-set indices ids."""
    return subspaces.make_subspace(spec.kind, spec.k, x, ae=ae, train_images=pca_images, seed=spec.seed, ids=ids)


def attack_images(model, x, y, condition, s, subspace=None):
    """One condition on the images x (labels y): PGD (settings s) with the gradient projected on / off
    `subspace` (None: unconstrained). Returns the per-image cpu tensors a shard stores."""
    model = model.eval()
    project, grad_share = None, torch.full((len(x),), float("nan"))
    if subspace is not None:
        project = subspace.on if condition == "on" else subspace.off
        g = input_gradient(model, x, y, s.loss)
        grad_share = manifold.energy_share(g, subspace.on(g)).detach().cpu()  # share IN the subspace
    r = attacks.pgd_l2(model, x, y, eps=s.eps, alpha=s.alpha, steps=s.steps, project=project, loss=s.loss,
                       clip=s.clip, refine_steps=s.refine_steps)
    tensors = {"delta": r.delta.flatten(1), "success": r.success, "norm": r.norm, "iterations": r.iterations,
               "label": r.label, "pred": r.pred, "subspace_share": r.subspace_share}
    tensors = {k: v.detach().cpu() for k, v in tensors.items()}
    tensors["grad_share"] = grad_share
    # how exact every projection of this attack was (lib.geometry.subspaces solve_summary: exact bases log residual 0)
    n = len(x)
    log = subspace.solve_summary(n) if subspace is not None else {
        "residual": torch.full((n,), float("nan")), "iterations": torch.zeros(n, dtype=torch.long),
        "converged": torch.ones(n, dtype=torch.bool)}
    tensors.update(proj_residual=log["residual"].float().cpu(), proj_iterations=log["iterations"].long().cpu(),
                   proj_converged=log["converged"].bool().cpu())
    return tensors


# What defines a shard's outcome, hashed into its cache key (an edit elsewhere, e.g. of how shards are
# scheduled, keeps the cache).
ATTACKS = Artifact("attacks", 1, (attacks, manifold, subspaces, AttackSettings, input_gradient, build_subspace,
                                  attack_images))


# ---- loading what a task names, once per process -------------------------------------------------------------

_memo = {}
MEMO_SIZE = 8  # models, data sets and PCA bases a worker keeps between shards


def _obtain(local, slot, load):
    """local[slot] if the caller holds it, else this process's copy, else load() (and keep it)."""
    if local and slot in local:
        return local[slot]
    if slot not in _memo:
        if len(_memo) >= MEMO_SIZE:
            _memo.pop(next(iter(_memo)))
        _memo[slot] = load()
    return _memo[slot]


def _data_set(task, local, name, identity):
    def load():
        d = data_lib.load(name, task.data_root)
        if d.identity() != identity:
            raise RuntimeError(f"{name} here (identity {d.identity()}) is not the data set the task was made with "
                               f"({identity}): workers need the same data files (DIMPLED_DATA) as the notebook")
        return d
    return _obtain(local, ("data", identity), load)


def _model(task, local, ref, d, device):
    if ref.config is None and not (local and (ref.kind, ref.key) in local):
        raise ValueError(f"the {ref.kind} {ref.key!r} has no stored config: it exists only in the process that "
                         "made it and cannot be loaded elsewhere")
    return _obtain(local, (ref.kind, ref.key), lambda: train.load_trained(
        ref.kind, ref.key, ref.config, d.shape, d.num_classes, device, task.cache_dir))


def _subspace(task, local, x, ids, d, device):
    spec = task.subspace
    if spec.kind == "tangent":
        return build_subspace(spec, x, ids, ae=_model(task, local, spec.autoencoder, d, device))
    if spec.kind != "pca":
        return build_subspace(spec, x, ids)

    def pca_basis():  # shared by all images: computed once per process, whatever the shard
        p = spec.pca
        images = _data_set(task, local, p.dataset, p.data_identity).subset(p.subset, None, p.seed).train_x
        if pca_identity(images) != p.identity:
            raise RuntimeError(f"the PCA images drawn here differ from the notebook's ({p.identity})")
        return build_subspace(spec, x, ids, pca_images=images)
    return _obtain(None, ("pca", spec.pca.identity, spec.k, str(x.device), str(x.dtype)), pca_basis)


def run_shard(task, local=None):
    """(tensors, hit): the shard's per-image tensors {name: (B, ...) cpu tensor}, from the cache when it holds
    them (hit), else computed here and written to the cache (atomically, lib.infra.cache).

    local: {slot: object} that the caller already holds, slots ("classifier" | "autoencoder", key) and
    ("data", identity); anything else is loaded from task.cache_dir / task.data_root (a model that is not
    in the cache raises lib.learn.train.ModelNotCached: a worker never trains)."""
    def build():
        device = pick_device(task.device)
        d = _data_set(task, local, task.dataset, task.data_identity)
        ids = torch.tensor(task.image_ids, dtype=torch.long)
        x, y = getattr(d, f"{task.split}_x")[ids], getattr(d, f"{task.split}_y")[ids]
        if cache.hash_tensor(x) != task.images_hash:
            raise RuntimeError(f"{task.dataset}/{task.split} images {list(task.image_ids)[:5]}... differ from the "
                               "notebook's: workers need the same data files (DIMPLED_DATA)")
        model = _model(task, local, task.classifier, d, device)
        x, y, spec = x.to(device), y.to(device), task.subspace
        # images in groups small enough for their subspaces' memory (ImageNet tangent spaces: one at a time)
        group = len(x) if spec is None else subspaces.images_at_once(spec.kind, spec.k, x)
        parts = []
        for i in range(0, len(x), group):
            xi, yi, idi = x[i:i + group], y[i:i + group], list(task.image_ids)[i:i + group]
            sub = None if spec is None else _subspace(task, local, xi, idi, d, device)
            parts.append(attack_images(model, xi, yi, task.condition, task.settings, sub))
        tensors = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
        return tensors, {"condition": task.condition, "subspace": None if spec is None else spec.kind,
                         "image_ids": list(task.image_ids)}

    entry, hit = cache.cached(ATTACKS.kind, task.key, build, root=task.cache_dir)
    return entry["state_dict"], hit
