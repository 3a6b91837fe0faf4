"""The on/off-subspace attack experiment, as per-image records.

For a classifier and N correctly classified images of one split, each *condition* is one attack:
"unconstrained" PGD, or PGD whose gradient is projected "on" or "off" a k-dimensional subspace
(the autoencoder's tangent space, or a random / coordinate / PCA control). A condition runs in shards
of `shard_size` images (lib.experiments.shards), each cached by a hash of everything it depends on (models, its
images, settings, subspace, code), so notebooks 03 and 04 share the attacks they have in common, a
re-run costs nothing and an interrupted one resumes with the shards it lacks. Shards run in this process
or on the workers of a dask.distributed scheduler (lib.infra.distributed); the records are the same either way,
and the same whatever the shard size (random subspaces are drawn per image, from the seed and its id).

One record per image and condition: dataset, split, clip (whether x + delta was kept in [0, 1]), image_id, condition,
subspace, k, n, success, norm, iterations, label, pred, subspace_share (energy of the final perturbation inside the
intended subspace: clipping leaks it), grad_share (energy of the clean image's loss gradient inside the
subspace; a random subspace captures about k/n of it), class_cosine (cosine between the perturbation and
mu[pred] - mu[label], the difference of the training-set class means of the adversarial and the true
class: DMM's claim that on-manifold perturbations "look like" the target class, as a number; NaN for
failures), proj_residual / proj_iterations / proj_converged (over every projection of the attack: the largest
relative residual, the solver iterations, whether all reached their tolerance; 0 / 0 / True for a projection by an
explicit basis or mask, NaN / 0 / True without one). `unconverged(records)` lists the conditions whose projections
did not converge: a notebook must say so, since an inexact P_off leaks tangent components into the "off" attack.
"""
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch

from lib.experiments import shards
from lib.infra import cache, distributed, sources
from lib.infra.names import CONDITIONS
from lib.infra.runtime import progress as progress_bar
# the notebooks' names for what lib.experiments.shards defines
from lib.experiments.shards import ATTACKS, AttackSettings, PCAImages, SubspaceSpec, input_gradient  # noqa: F401

TENSORS = ("delta", "success", "norm", "iterations", "label", "pred", "subspace_share", "grad_share",
           "proj_residual", "proj_iterations", "proj_converged")


def unconverged(records):
    """Rows (dataset, split, condition, subspace, images, worst_residual) of the conditions in which some
    projection stopped before its tolerance; empty when every projection converged."""
    bad = records[~records["proj_converged"].astype(bool)]
    if not len(bad):
        return pd.DataFrame(columns=["dataset", "split", "condition", "subspace", "images", "worst_residual"])
    return (bad.groupby(["dataset", "split", "condition", "subspace"], sort=False)
            .agg(images=("image_id", "size"), worst_residual=("proj_residual", "max")).reset_index())


def projection_check(records):
    """One sentence (markdown) on the projections behind `records`: that every one converged (with the largest
    residual of those solved without a basis), or, in bold, which conditions did not and how far they got."""
    if not len(records) or "proj_converged" not in records:
        return "No projected attacks."
    bad = unconverged(records)
    if len(bad):
        rows = "; ".join(f"{r.dataset}/{r.split} {r.condition} {r.subspace}: {r.images} images, residual up to "
                         f"{r.worst_residual:.2g}" for r in bad.itertuples())
        return (f"**Projections that did not converge** (an inexact P_off leaks tangent components into the off "
                f"attack; read these rows with care): {rows}.")
    solved = records[records["proj_residual"] > 0]  # projected without a basis (Gram matrix): residual logged
    worst = (f"; largest relative residual of those solved without a basis {solved['proj_residual'].max():.2g}"
             if len(solved) else "")
    return f"Every projection converged ({len(records[records['subspace'] != 'none']):,} projected attacks{worst})."


def settings_from(table):
    """{condition: AttackSettings} from a notebook parameter {condition: {eps, alpha, steps, ...}}."""
    unknown = set(table) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"attack settings are given per condition, one of {CONDITIONS}; got {sorted(unknown)}")
    return {c: AttackSettings(**v) for c, v in table.items()}


def unclipped(settings):
    """The same attack settings with x + delta free to leave [0, 1] (the sensitivity run of 03 and 04)."""
    return {c: AttackSettings(**{**vars(s), "clip": False}) for c, s in settings.items()}


@torch.no_grad()
def pick_correct(model, x, y, n, seed=0, device="cpu"):
    """Indices of up to n images that `model` classifies correctly, in a seeded random order."""
    if n < 1:
        raise ValueError(f"n_images must be a positive number, got {n}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    pred = torch.cat([model(x[order[i:i + 1000]].to(device)).argmax(1).cpu() for i in range(0, len(x), 1000)])
    return order[pred == y[order]][:n]


def class_means(x, y):
    """(max label + 1, n) tensor of x's dtype: the mean training image of each class (NaN rows for absent labels)."""
    means = torch.full((int(y.max()) + 1, x[0].numel()), float("nan"), dtype=x.dtype)
    for c in y.unique():
        means[c] = x[y == c].flatten(1).mean(0)
    return means


def class_cosine(delta, label, pred, success, means):
    """cos(delta, mu[pred] - mu[label]) per image; NaN where the attack failed."""
    direction = means[pred] - means[label]
    cos = torch.nn.functional.cosine_similarity(delta.flatten(1).double(), direction.double(), dim=1)
    return torch.where(success, cos, torch.full_like(cos, float("nan"))).float()


def records_frame(t, ids, means, **columns):
    """The records (module docstring) of one condition from its per-image tensors t
    (lib.experiments.shards.attack_images' names): ``columns`` (dataset, split, clip, condition, subspace, k, n) first,
    then image_id (``ids``), the tensors' scalars and class_cosine (``means``: class_means of the training images)."""
    rec = pd.DataFrame({name: t[name].numpy() for name in TENSORS[1:]})
    rec["class_cosine"] = class_cosine(t["delta"], t["label"], t["pred"], t["success"], means).numpy()
    rec.insert(0, "image_id", np.asarray(ids))
    for col, value in reversed(list(columns.items())):
        rec.insert(0, col, value)
    return rec


def model_ref(kind, trained):
    """A lib.learn.train.Trained as a shards.ModelRef: its cache key and config, what a worker loads it by."""
    return shards.ModelRef(kind, trained.key, trained.meta.get("config"))


def tangent_spec(ae):
    """The tangent space of the autoencoder `ae` (a lib.learn.train.Trained) at each attacked image."""
    return SubspaceSpec("tangent", ae.model.latent_dim, ae.key, autoencoder=model_ref("autoencoder", ae),
                        local={("autoencoder", ae.key): ae.model})


def training_images(data, subset=None, seed=0):
    """The training images of `data` a PCA control is computed from (`subset` of them drawn with `seed`, as
    Data.subset; None: all), by description, so that a worker draws the same ones again."""
    x = data.subset(subset, None, seed).train_x
    return PCAImages(data.name, data.identity(), subset, seed, shards.pca_identity(x))


def control_spec(kind, k, seed=0, train_images=None):
    """A random control of dimension k: coordinate or random (orthonormal), drawn per image from (seed, image
    id), or pca of train_images (a PCAImages: experiment.training_images(data, subset, seed))."""
    if kind == "pca":
        if not isinstance(train_images, PCAImages):
            raise ValueError("a pca control needs train_images=experiment.training_images(data, subset, seed)")
        return SubspaceSpec(kind, k, train_images.identity, seed, pca=train_images)
    return SubspaceSpec(kind, k, f"seed={seed}", seed)


@dataclass
class Outcome:
    """One condition on the experiment's images: per-image tensors (cpu) and the records."""

    condition: str
    subspace: str
    delta: torch.Tensor
    pred: torch.Tensor
    records: pd.DataFrame


class AttackExperiment:
    """A classifier and the N correctly classified images of one data set split that all conditions attack.

    Each condition runs in shards of `shard_size` images, one cache entry each (lib.experiments.shards): on the workers
    of the dask.distributed scheduler at the address `scheduler`, else $DIMPLED_SCHEDULER's, else (neither set) in
    this process (lib.infra.distributed.scheduler_address).
    A re-run computes only the shards the cache lacks; the records do not depend on the shard size."""

    shard_function = staticmethod(shards.run_shard)  # runs one shard (a test swaps it to interrupt a run)

    def __init__(self, classifier, data, split, n_images, settings, *, seed=0, device="cpu", shard_size=50,
                 scheduler=None, ids=None):
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test; got {split!r}")
        missing = set(CONDITIONS) - set(settings)
        if missing:
            raise ValueError(f"attack settings are missing for {sorted(missing)}")
        if not (isinstance(shard_size, int) and shard_size >= 1):
            raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
        self.classifier, self.data, self.split, self.settings = classifier, data, split, settings
        self.seed, self.device, self.shard_size = seed, torch.device(device), shard_size
        self.scheduler = distributed.scheduler_address(scheduler)
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        # ids: the images to attack (indices into the split, e.g. another classifier's picks); None: pick_correct's
        self.ids = pick_correct(classifier.model, x, y, n_images, seed, self.device) if ids is None else \
            torch.as_tensor(ids, dtype=torch.long)
        self.x, self.y = x[self.ids], y[self.ids]
        self.class_means = class_means(data.train_x, data.train_y)
        self.data_identity = data.identity()  # hashes the training images: once
        self.shard_counts = {"cached": 0, "computed": 0}  # shards of all conditions run so far

    def tasks(self, condition, spec):
        """The condition's shards as lib.experiments.shards.ShardTask, in image order."""
        tasks = []
        for start in range(0, len(self.ids), self.shard_size):
            ids = tuple(int(i) for i in self.ids[start:start + self.shard_size])
            images_hash = cache.hash_tensor(self.x[start:start + self.shard_size])
            config = {"classifier": self.classifier.key, "data": self.data_identity, "split": self.split, "ids": ids,
                      "x": images_hash, "condition": condition, "settings": asdict(self.settings[condition]),
                      "subspace": None if spec is None else (spec.kind, spec.k, spec.identity)}
            tasks.append(shards.ShardTask(
                key=ATTACKS.key(config), cache_dir=str(cache.cache_dir()),
                data_root=str(sources.data_root()), dataset=self.data.name, data_identity=self.data_identity,
                split=self.split, image_ids=ids, images_hash=images_hash,
                classifier=model_ref("classifier", self.classifier), condition=condition,
                settings=self.settings[condition], subspace=None if spec is None else spec.declared(),
                device="auto" if self.scheduler else str(self.device)))  # a worker uses its own GPU if it has one
        return tasks

    def _local(self, spec):
        """What this process already holds, so that an in-process shard loads nothing."""
        return {("classifier", self.classifier.key): self.classifier.model, ("data", self.data_identity): self.data,
                **({} if spec is None else spec.local)}

    def run(self, condition, spec=None, progress=True):
        """The condition's Outcome: its shards from the cache where there, the others computed (in this process
        or on the scheduler's workers); spec is None exactly for "unconstrained"."""
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")
        if (spec is None) != (condition == "unconstrained"):
            raise ValueError("an 'on' / 'off' attack needs a subspace spec; 'unconstrained' takes none")
        tasks = self.tasks(condition, spec)
        found = [cache.lookup("attacks", t.key, t.cache_dir) for t in tasks]
        todo = [i for i, entry in enumerate(found) if entry is None]
        results = [None if entry is None else entry["state_dict"] for entry in found]
        run = self.shard_function if self.scheduler else partial(self.shard_function, local=self._local(spec))
        label = f"{self.data.name}/{self.split} {condition}" + ("" if spec is None else f" {spec.kind}")
        with progress_bar(total=len(tasks), initial=len(tasks) - len(todo), desc=label, unit="shard",
                          disable=not progress, leave=False) as bar:
            computed = distributed.run_tasks(run, [tasks[i] for i in todo], self.scheduler, done=lambda: bar.update())
        for i, (tensors, hit) in zip(todo, computed):
            results[i] = tensors
            self.shard_counts["cached" if hit else "computed"] += 1
        self.shard_counts["cached"] += len(tasks) - len(todo)
        t = {name: torch.cat([r[name] for r in results]) for name in TENSORS}
        return Outcome(condition, "none" if spec is None else spec.kind, t["delta"].view_as(self.x), t["pred"],
                       self._records(condition, spec, t))

    def _records(self, condition, spec, t):
        return records_frame(t, self.ids.numpy(), self.class_means, dataset=self.data.name, split=self.split,
                             clip=self.settings[condition].clip, condition=condition,
                             subspace="none" if spec is None else spec.kind,
                             k=self.data.n if spec is None else spec.k, n=self.data.n)

    def where(self):
        """Where this experiment's shards are computed, in words."""
        return f"on the workers of the dask scheduler {self.scheduler}" if self.scheduler else "in this process"


def shard_summary(experiments):
    """In words: how many attack shards of these AttackExperiments came from the cache, how many were computed
    and where (the notebook's record of what a run did, and of what a resumed run still had to do)."""
    cached = sum(e.shard_counts["cached"] for e in experiments)
    computed = sum(e.shard_counts["computed"] for e in experiments)
    where = " and ".join(sorted({e.where() for e in experiments})) or "in this process"
    sizes = ", ".join(str(s) for s in sorted({e.shard_size for e in experiments}))
    return f"attack shards ({sizes} images each): {cached} from the cache, {computed} computed {where}"
