"""Positive controls: worlds whose data manifold, tangent space and (world 1) decision boundary are known exactly,
run through the attacks, subspaces and claims of notebooks 03-05 (lib.experiments.shards.attack_images,
lib.geometry.subspaces, lib.studies.manifold.claims on records of lib.experiments.experiment's columns). Synthetic,
offline, seeded; n = 784 (28 x 28) so that k/n is MNIST's.

World 1, a dimpled world (DMM true by construction). The data lie on a k-dimensional affine subspace
x = c + U z (U orthonormal, c = 0.5: inside the [0, 1] box), two classes on either side of the hyperplane
h(z) = w.z = 0 (|w| = 1) at a distance |h| in [d_min, d_max] from it. The classifier is written in closed form:

    F(x) = h(U^T (x - c)) + beta * v.(x - c - U U^T (x - c)),    logits (-F/2, F/2),

v a unit normal of the manifold. Its input gradient is g = U w + beta v everywhere, so for a subspace with
projection P a straight attack along P g meets the boundary at |F| / ||P g||: on the manifold |h| (set by h
alone), off it |h| / beta, unconstrained |h| / sqrt(1 + beta^2). The steepness s = beta / ||grad h|| = beta moves
the world from a boundary perpendicular to the manifold (s -> 0) through "general position" (the tangent space
behaves like a random subspace: s ~ sqrt((n - k) / k)) to a deep dimple (s >> sqrt((n - k) / k)).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib.experiments import experiment, shards
from lib.geometry import subspaces
from lib.inference import stats, verdicts
from lib.studies.manifold import claims
from lib.inference.rules import Verdict

SHAPE = (1, 28, 28)
N = 28 * 28
WORLD_CLAIMS = ("1", "1b", "3", "4")  # the claims a world is judged on (5: class features mean nothing here)
CURVE_CLAIMS = ("3", "4", "1b")        # the discriminating ones, on the power curve


@dataclass
class LinearManifold:
    """x = c + U z: a k-dimensional affine subspace of R^n (U (n, k) orthonormal, c (n,)), with V (n, m):
    orthonormal directions normal to it."""
    U: torch.Tensor
    c: torch.Tensor
    V: torch.Tensor

    @property
    def k(self):
        return self.U.shape[1]

    def coordinates(self, x):
        """z = U^T (x - c), (B, k)."""
        return (x.flatten(1) - self.c) @ self.U

    def point(self, z):
        """c + U z as images (B, 1, 28, 28)."""
        return (self.c + z @ self.U.T).view(-1, *SHAPE)

    def normal_part(self, x):
        """(I - U U^T)(x - c), (B, n)."""
        d = x.flatten(1) - self.c
        return d - (d @ self.U) @ self.U.T


def linear_manifold(k=16, normals=1, seed=0, n=N, centre=0.5, dtype=torch.float32) -> LinearManifold:
    """A random k-dimensional affine subspace through the box's centre, and `normals` unit normals of it (QR of
    an n x (k + normals) Gaussian matrix)."""
    if not (isinstance(k, int) and 1 <= k and k + normals < n):
        raise ValueError(f"k must be an integer in 1..{n - normals - 1}, got {k!r}")
    gauss = torch.randn(n, k + normals, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    Q = torch.linalg.qr(gauss).Q.to(dtype)
    return LinearManifold(Q[:, :k].contiguous(), torch.full((n,), centre, dtype=dtype), Q[:, k:].contiguous())


class DimpledClassifier(nn.Module):
    """World 1's closed-form classifier (module docstring): F(x) = w.z + steepness * v.(normal part of x)."""

    def __init__(self, manifold: LinearManifold, w: torch.Tensor, steepness: float):
        super().__init__()
        if steepness < 0:
            raise ValueError(f"steepness must be >= 0, got {steepness}")
        self.m, self.w, self.beta = manifold, w / w.norm(), float(steepness)

    def score(self, x):
        """F(x), (B,): positive for class 1."""
        return self.m.coordinates(x) @ self.w + self.beta * (self.m.normal_part(x) @ self.m.V[:, 0])

    def gradient(self):
        """grad F = U w + beta v (n,): the same at every x."""
        return self.m.U @ self.w + self.beta * self.m.V[:, 0]

    def forward(self, x):
        f = self.score(x)
        return torch.stack([-f / 2, f / 2], 1)


@dataclass
class DimpledWorld:
    """World 1 at one steepness: the classifier, its test images (all correctly classified, by construction)
    and a training sample for the class means."""
    model: DimpledClassifier
    x: torch.Tensor
    y: torch.Tensor
    train_x: torch.Tensor
    train_y: torch.Tensor

    @property
    def steepness(self):
        return self.model.beta


def sample_two_classes(m: LinearManifold, w, count, generator, distances=(0.1, 0.4), spread=1.0):
    """Points c + U z with z = t w + (spread) Gaussian noise orthogonal to w, |t| uniform in ``distances``, the
    sign of t the class (label 1: t > 0)."""
    y = torch.randint(0, 2, (count,), generator=generator)
    t = torch.empty(count, dtype=w.dtype).uniform_(*distances, generator=generator) * (2 * y - 1)
    noise = torch.randn(count, m.k, generator=generator, dtype=w.dtype) * spread / np.sqrt(m.k)
    noise -= (noise @ w)[:, None] * w
    return m.point(t[:, None] * w + noise), y


def dimpled_world(steepness, n_images=50, k=16, seed=0, n_train=1000, distances=(0.1, 0.4),
                  dtype=torch.float32) -> DimpledWorld:
    """World 1 at `steepness` (beta / ||grad h||): the same manifold, h and images for every steepness of a seed
    (float64: attacks whose norms match the analytic distances to the refinement's tolerance, not float32's)."""
    m = linear_manifold(k, 1, seed, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    w = torch.randn(k, generator=g, dtype=dtype)
    w /= w.norm()
    x, y = sample_two_classes(m, w, n_images, g, distances)
    tx, ty = sample_two_classes(m, w, n_train, g, distances)
    return DimpledWorld(DimpledClassifier(m, w, steepness), x, y, tx, ty)


# ---------------------------------------------------------------- what is known analytically

def boundary_distance(model: DimpledClassifier, x, Q=None, complement=False):
    """|F(x)| / ||P g||: where a straight attack along the projected gradient meets the boundary. Q: None
    (unconstrained) or an orthonormal basis (n, k) or (B, n, k); complement: project off it instead."""
    with torch.no_grad():
        f, g = model.score(x).abs(), model.gradient()
        if Q is None:
            return f / g.norm()
        on = (Q.transpose(-2, -1) @ g).norm(dim=-1) * torch.ones_like(f)
        return f / ((g.norm() ** 2 - on ** 2).clamp_min(0).sqrt() if complement else on)


def analytic_effects(steepness, k=16, n=N) -> dict:
    """Each world claim's population median on its own additive scale, at a steepness s (||grad h|| = 1):
    1: log s; 1b and 3: log(s / flat-boundary median) (a random subspace's on/off ratio has that median,
    lib.inference.stats.flat_boundary_median); 4: log((1 / (1 + s^2)) / median share of a random subspace)."""
    s = float(steepness)
    flat = stats.flat_boundary_median(k, n)
    with np.errstate(divide="ignore"):
        return {"1": np.log(s), "1b": np.log(s / flat), "3": np.log(s / flat),
                "4": np.log(1 / (1 + s * s) / stats.random_share_median(k, n))}


def steepness_of(claim_id, ratio, k=16, n=N, reference=None) -> float:
    """The steepness s of the dimpled world whose claim ``claim_id`` ("3" or "4") has the effect ``ratio`` (as a
    ratio): analytic_effects inverted. Claim 3: s = ratio x the random subspace's on/off ratio (``reference``; None:
    the flat boundary's median, as in the world). Claim 4: 1 / (1 + s^2) = ratio x the random subspace's share
    (``reference``; None: its Beta median), so s = sqrt(1 / (ratio x share) - 1), 0 where the tangent share is
    already as large as a boundary across the manifold gives (ratio x share >= 1)."""
    if claim_id == "3":
        return float(ratio) * (stats.flat_boundary_median(k, n) if reference is None else float(reference))
    if claim_id == "4":
        share = float(ratio) * (stats.random_share_median(k, n) if reference is None else float(reference))
        return float(np.sqrt(1 / share - 1)) if 0 < share < 1 else (0.0 if share >= 1 else float("inf"))
    raise ValueError(f"steepness is read from claim 3 or 4; got {claim_id!r}")


def analytic_threshold(claim_id, margin=1.1, k=16, n=N) -> float:
    """The steepness at which the claim's analytic effect reaches the margin (beyond it: 'supported' is true)."""
    flat, share = stats.flat_boundary_median(k, n), stats.random_share_median(k, n)
    return {"1": margin, "1b": margin * flat, "3": margin * flat, "4": float(np.sqrt(margin / share - 1))}[claim_id]


# ---------------------------------------------------------------- the chain of 03-05 on a world

def attack_records(model, x, y, spaces: dict, settings: dict, means, ids=None, **columns) -> pd.DataFrame:
    """Records (lib.experiments.experiment's columns) of the unconstrained attack and of on / off attacks in each
    subspace of ``spaces`` ({name: lib.geometry.subspaces.Subspace}), by lib.experiments.shards.attack_images, as
    notebooks 03 and 04 run them. settings: {condition: lib.experiments.shards.AttackSettings}; columns: dataset, split
    (clip comes from settings)."""
    ids = np.arange(len(x)) if ids is None else np.asarray(ids)
    n = x[0].numel()
    frames = []
    for condition, name, sub in [("unconstrained", "none", None)] + [(c, name, s) for name, s in spaces.items()
                                                                      for c in ("on", "off")]:
        t = shards.attack_images(model, x, y, condition, settings[condition], sub)
        frames.append(experiment.records_frame(
            t, ids, means, **columns, clip=settings[condition].clip, condition=condition, subspace=name,
            k=n if sub is None else sub.k, n=n))
    return pd.concat(frames, ignore_index=True)


def world_records(world: DimpledWorld, settings: dict, dataset: str, seed=0) -> pd.DataFrame:
    """World 1's records: unconstrained, on / off its true tangent space and a random subspace of the same k."""
    m = world.model.m
    spaces = {"tangent": subspaces.TangentSubspace(m.U),
              "random": subspaces.RandomSubspace(N, m.k, batch=len(world.x), seed=seed, dtype=world.x.dtype)}
    means = experiment.class_means(world.train_x, world.train_y)
    return attack_records(world.model.eval(), world.x, world.y, spaces, settings, means, dataset=dataset,
                          split="test")


def world_rows(records: pd.DataFrame, margin=1.1, **notes) -> list:
    """Claims 1, 1b, 3 (vs random) and 4 (lib.studies.manifold.claims, unchanged) on each data set of unclipped world
    records; ``notes`` go into every row (e.g. world="synthetic"); a row's "steepness" note comes from its data
    set's."""
    lm, rows = np.log(margin), []
    for ds, r in records.groupby("dataset", sort=False):
        where = {"dataset": ds, "split": str(r["split"].iloc[0]), "clip": bool(r["clip"].iloc[0])}
        made = [claims.claim_on_off(r, where, lm), claims.claim_gap(r, where, "random", lm),
                claims.claim_gradient_share(r, where, lm)]
        if not where["clip"]:
            made.insert(1, claims.claim_flat_boundary(r, where, lm))
        extra = {c: r[c].iloc[0] for c in ("steepness", "world") if c in r}
        rows += [_with_notes(row, **notes, **extra) for row in made]
    return rows


def _with_notes(row, **notes):
    return replace(row, notes={**row.notes, **notes})


def sweep(steepness, settings, n_images=50, k=16, seed=0, progress=None):
    """World 1 at every steepness: (records with a ``steepness`` column, the largest |norm - analytic distance|
    of successful attacks per steepness). progress: a tqdm-like wrapper of the loop (None: none)."""
    frames, errors = [], {}
    for s in (progress(steepness) if progress else steepness):
        world = dimpled_world(s, n_images, k, seed)
        r = world_records(world, settings, f"world 1 · s={s:g}", seed).assign(steepness=float(s), world="synthetic")
        errors[float(s)] = max_analytic_error(world, r, seed)
        frames.append(r)
    return pd.concat(frames, ignore_index=True), errors


def analytic_norms(world: DimpledWorld, seed=0) -> dict:
    """{(condition, subspace): per-image boundary distance} for world_records' arms."""
    m, model = world.model.m, world.model
    Q = subspaces.RandomSubspace(N, m.k, batch=len(world.x), seed=seed, dtype=world.x.dtype).Q
    return {("unconstrained", "none"): boundary_distance(model, world.x),
            ("on", "tangent"): boundary_distance(model, world.x, m.U),
            ("off", "tangent"): boundary_distance(model, world.x, m.U, complement=True),
            ("on", "random"): boundary_distance(model, world.x, Q),
            ("off", "random"): boundary_distance(model, world.x, Q, complement=True)}


def max_analytic_error(world: DimpledWorld, records, seed=0) -> float:
    """The largest |recorded norm - analytic distance| over successful attacks (the refinement's tolerance is
    alpha / 2^refine_steps); NaN where none succeeded."""
    worst = np.nan
    for (cond, sub), d in analytic_norms(world, seed).items():
        a = records[(records["condition"] == cond) & (records["subspace"] == sub)].sort_values("image_id")
        ok = a["success"].to_numpy(bool)
        if ok.any():
            worst = np.nanmax([worst, np.abs(a["norm"].to_numpy(float) - d.numpy())[ok].max()])
    return float(worst)


def turning_points(table: pd.DataFrame, claim_ids=CURVE_CLAIMS, margin=1.1, k=16) -> pd.DataFrame:
    """Per claim: the smallest swept steepness from which on every verdict is "supported" (measured), beside the
    steepness at which the analytic effect reaches the margin."""
    out = []
    for cid in claim_ids:
        t = table[table["claim_id"] == cid].sort_values("steepness")
        ok = (t["verdict"] == Verdict.SUPPORTED).to_numpy()
        tail = [i for i in range(len(ok)) if ok[i:].all()]
        out.append({"claim": t["short"].iloc[0] if len(t) else cid, "claim_id": cid,
                    "s measured": float(t["steepness"].iloc[tail[0]]) if tail else np.nan,
                    "s analytic": analytic_threshold(cid, margin, k)})
    return pd.DataFrame(out)


def false_positives(steepness, settings, seeds, n_images=50, k=16, margin=1.1, alpha=stats.ALPHA) -> pd.DataFrame:
    """How often each world claim comes out "supported" over independent worlds (seeds) at one steepness, each
    world's rows judged as their own Holm family: on the flat side, a false-positive rate (with Wilson's 95%
    interval). Claim 1b's per-image values carry no noise in world 1 (the tangent arms are exact), so its rate
    is 0 or 1 by the analytic effect's side of the margin."""
    hits = {}
    for seed in seeds:
        world = dimpled_world(steepness, n_images, k, seed)
        r = world_records(world, settings, f"world 1 · s={steepness:g} · seed {seed}", seed)
        t = verdicts.judge(world_rows(r, margin), "simulation", alpha)
        for cid, v in zip(t["claim_id"], t["verdict"]):
            hits.setdefault(cid, []).append(v == Verdict.SUPPORTED)
    out = []
    for cid, h in hits.items():
        lo, hi = stats.wilson_ci(int(sum(h)), len(h))
        out.append({"claim_id": cid, "steepness": float(steepness), "worlds": len(h), "supported": int(sum(h)),
                    "rate": float(np.mean(h)), "CI low": lo, "CI high": hi})
    return pd.DataFrame(out)
