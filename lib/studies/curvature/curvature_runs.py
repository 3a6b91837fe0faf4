"""Notebook 06's measurements, one function per section, each on one data set: the networks (`nets_for`: the ReLU
MLP, its softplus twin, the autoencoder), the full spectra at DeepFool boundary points (`boundary_spectra`), how the
curvatures depend on the scale (`scale_sweep`), the shared curved directions (`shared_directions`), detection by
Algorithm 2 (`detection`) and the geometry over training (`dynamics`). Each returns plain tables and arrays; the
measures themselves are lib.studies.curvature.curvature_analysis's, the sentences and headline figures
lib.studies.curvature.curvature_report's.

Each section's result is cached (lib.infra.memo) under a key of its settings, the cache keys of the classifier and the
autoencoder (Nets.keys), the images (the data set's identity and a hash of its test images, and of the boundary
points a section is given) and the code that computes it, so that a re-run with a full cache costs seconds. Nets
without keys (models made in a test) are measured without the cache."""
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lib.boundary import attacks
from lib.experiments import experiment
from lib.geometry import manifold
from lib.infra import cache, memo
from lib.learn import checkpoints
from lib.boundary import curvature as cv
from lib.studies.curvature import curvature_analysis
from lib.infra.artifacts import Artifact

TWIN, RELU = "softplus twin", "ReLU, central differences"  # the two methods of the records
PUBLISHED_SHARES = {
    "random": (0.25, 0.25),
    "adversarial": (0.64, 0.60),
    "x2 - x1": (0.10, 0.09),
    "gradient": (0.22, 0.24),
}
"""Fawzi et al. 2018, Table 1: median share in S of each perturbation, LeNet and NiN on CIFAR-10."""


@dataclass
class Nets:
    """The networks of one data set: the ReLU MLP, its softplus twin, the autoencoder (its tangent spaces), the
    central-difference step h of the MLP, the twin's label agreement with the MLP and the autoencoder's k; keys: the
    cache keys of the classifier and the autoencoder, with beta (what identifies the nets in a cached result; empty:
    nothing is cached)."""

    relu: nn.Module
    twin: nn.Module
    ae: nn.Module
    h: float
    agree: float
    k: int
    keys: tuple = ()


def nets_for(relu, ae, beta, h, test_x, keys=()):
    """Nets of the MLP `relu` and autoencoder `ae`: the twin is Softplus(beta) in place of every ReLU; its agreement
    is the share of `test_x` on which its label is the MLP's. keys: the models' cache keys
    (lib.learn.train.Trained.key)."""
    twin = cv.softplus_twin(relu, beta)
    with torch.no_grad():
        agree = float((twin(test_x).argmax(1) == relu(test_x).argmax(1)).float().mean())
    return Nets(relu, twin, ae, h, agree, ae.latent_dim, (*keys, beta) if keys else ())


def _cached(section, nets, d, settings, build, points=None):
    """build()'s value, cached (lib.infra.memo) under `section`, its `settings`, the nets' keys and h, the data set's
    identity and test images, the boundary points it is given (`points`) and CURVATURE's version."""
    if not nets.keys:
        return build()
    config = {"section": section, "models": list(nets.keys), "h": nets.h, "data": d.identity(),
              "test_images": cache.hash_tensor(d.test_x), "settings": settings,
              "points": None if points is None else [cache.hash_tensor(points.x), cache.hash_tensor(points.z)]}
    return memo.cached_result(CURVATURE.kind, CURVATURE.key(config), build)[0]


def boundary_spectra(name, nets, d, splits, n_points, seed, device):
    """Per split ("test", "train"): `n_points` images the MLP gets right (seeded), their curvature records
    (lib.studies.curvature.curvature_analysis.measure) for the twin (exact HVPs, full spectra) and for the MLP (central
    differences at nets.h; tangent and random subspaces only). Returns (records with dataset, split, method, image;
    {(split, method): the twin's mean curvature profile}; {split: the twin's BoundaryPoints})."""
    return _cached(
        "boundary_spectra",
        nets,
        d,
        {"name": name, "splits": list(splits), "n_points": n_points, "seed": seed},
        lambda: _boundary_spectra(name, nets, d, splits, n_points, seed, device),
    )


def _boundary_spectra(name, nets, d, splits, n_points, seed, device):
    frames, profiles, boundary = [], {}, {}
    for split in splits:
        xs, ys = (d.test_x, d.test_y) if split == "test" else (d.train_x, d.train_y)
        ids = experiment.pick_correct(nets.relu, xs, ys, n_points, seed, device)
        x = xs[ids].to(device)
        for method, model, h in ((TWIN, nets.twin, None), (RELU, nets.relu, nets.h)):
            full = method == TWIN  # the ReLU MLP's full spectra: in the scale section
            rec, kappa, bp = curvature_analysis.measure(model, nets.ae, x, h=h, seed=seed, full=full)
            frames.append(rec.assign(dataset=name, split=split, method=method, image=ids.numpy()))
            if full:
                profiles[split, method] = curvature_analysis.mean_profile(kappa.cpu())
                boundary[split] = bp
    return frames, profiles, boundary


def _extremes(kappa):
    """Mean over images of the most negative and most positive principal curvature, and the mean of all."""
    return {"min": float(kappa[:, 0].mean()), "max": float(kappa[:, -1].mean()), "mean": float(kappa.mean())}


def scale_sweep(name, nets, d, n_images, h_sweep, beta_sweep, seed, device):
    """On `n_images` test images (seed + 1): the MLP's curvatures by central differences at each step h, and its
    softplus twins' at each sharpness beta (scale 1 / beta). Rows: dataset, method, scale, min, max, mean."""
    return _cached("scale_sweep", nets, d, {"name": name, "n_images": n_images, "h_sweep": list(h_sweep),
                                            "beta_sweep": list(beta_sweep), "seed": seed},
                   lambda: _scale_sweep(name, nets, d, n_images, h_sweep, beta_sweep, seed, device))


def _scale_sweep(name, nets, d, n_images, h_sweep, beta_sweep, seed, device):
    ids = experiment.pick_correct(nets.relu, d.test_x, d.test_y, n_images, seed + 1, device)
    x = d.test_x[ids].to(device)
    bp_relu = cv.boundary_points(nets.relu, x)
    rows = []
    for h in h_sweep:
        (kappa, _), _ = cv.spectrum(nets.relu, bp_relu, h=h, vectors=False)
        rows.append({"dataset": name, "method": "ReLU MLP, step h", "scale": h, **_extremes(kappa)})
    for b in beta_sweep:
        t = cv.softplus_twin(nets.relu, b)
        (kappa, _), _ = cv.spectrum(t, cv.boundary_points(t, x), vectors=False)
        rows.append({"dataset": name, "method": "softplus twin, 1/β", "scale": 1 / b, **_extremes(kappa)})
    return rows


def shared_directions(name, nets, d, test_boundary, *, points, per_point, dim, n_points, noise_norms, seed, device):
    """Fawzi et al.'s shared curved directions: S from the twin's top `per_point` principal directions at `points`
    training points (seed + 2), dim S = `dim` (None: 200 / 3072 of n); then the share in S of four perturbations at
    the test boundary points (`test_boundary`, else `n_points` new ones) and the twin's misclassification under
    noise in S and in S-perp. Returns (share rows, noise table)."""
    settings = {"name": name, "points": points, "per_point": per_point, "dim": dim, "n_points": n_points,
                "noise_norms": list(noise_norms), "seed": seed}
    return _cached("shared_directions", nets, d, settings, lambda: _shared_directions(
        name, nets, d, test_boundary, points=points, per_point=per_point, dim=dim, n_points=n_points,
        noise_norms=noise_norms, seed=seed, device=device), test_boundary)


def _shared_directions(name, nets, d, test_boundary, *, points, per_point, dim, n_points, noise_norms, seed, device):
    dim = dim or int(round(200 / 3072 * d.n))
    ids = experiment.pick_correct(nets.relu, d.train_x, d.train_y, points, seed + 2, device)
    bp_tr = cv.boundary_points(nets.twin, d.train_x[ids].to(device))
    (k_tr, dirs_tr), _ = cv.spectrum(nets.twin, bp_tr)
    per_point = min(per_point, d.n - 1)
    S = curvature_analysis.shared_subspace(k_tr.cpu(), dirs_tr.cpu(), per_point, min(dim, per_point * len(ids)))
    bp = test_boundary
    if bp is not None:  # a cached one is on the CPU
        bp = cv.BoundaryPoints(*(getattr(bp, f).to(device) for f in ("x", "z", "i", "j", "success")))
    else:
        tid = experiment.pick_correct(nets.relu, d.test_x, d.test_y, n_points, seed, device)
        bp = cv.boundary_points(nets.twin, d.test_x[tid].to(device))
    g = torch.Generator().manual_seed(seed)
    x = bp.x.cpu()
    perm = torch.randperm(len(d.test_x), generator=g)[:2 * len(x)]
    vs = {"random": torch.randn(x.shape, generator=g), "adversarial": bp.r.cpu(),
          "x2 - x1": d.test_x[perm[:len(x)]] - d.test_x[perm[len(x):]],
          "gradient": experiment.input_gradient(nets.twin, bp.x, bp.i, loss="ce").cpu()}
    rows = []
    for kind, v in vs.items():
        s = curvature_analysis.share_in(S.cpu(), v)
        rows.append({"dataset": name, "perturbation": kind, "dim S": S.shape[1], "n": d.n,
                     "median share": float(np.median(s)), "mean share": float(np.mean(s)),
                     "sqrt(dim S / n)": float(np.sqrt(S.shape[1] / d.n)),
                     "LeNet (CIFAR-10)": PUBLISHED_SHARES[kind][0], "NiN (CIFAR-10)": PUBLISHED_SHARES[kind][1]})
    noise = curvature_analysis.noise_misclassification(nets.twin, x.to(device), S, noise_norms, seed=seed).assign(
        dataset=name
    )
    return rows, noise


def detection(name, nets, d, n_images, draws, pgd, seed, device):
    """Algorithm 2 on the twin: `n_images` natural test images (seed + 3) against the same images after DeepFool and
    after greedy L2 PGD (`pgd`: eps, alpha, steps). Per attack one row (AUC with a bootstrap interval, the shares of
    rho on the expected side, label recovery at t = 0 and, post hoc, by argmin) and its ROC curve.
    Returns (rows, {"<name>: natural vs <attack>": (fpr, tpr, auc)})."""
    return _cached(
        "detection",
        nets,
        d,
        {"name": name, "n_images": n_images, "draws": draws, "pgd": dict(pgd), "seed": seed},
        lambda: _detection(name, nets, d, n_images, draws, pgd, seed, device),
    )


def _detection(name, nets, d, n_images, draws, pgd, seed, device):
    ids = experiment.pick_correct(nets.twin, d.test_x, d.test_y, n_images, seed + 3, device)
    x, y = d.test_x[ids].to(device), d.test_y[ids].to(device)
    x_df, _, _, ok_df = cv.deepfool(nets.twin, x)
    res = attacks.pgd_l2(nets.twin, x, y, eps=pgd["eps"], alpha=pgd["alpha"], steps=int(pgd["steps"]))
    rho_nat, _, _ = curvature_analysis.detection_scores(nets.twin, x, draws, seed=seed)
    rows, roc = [], {}
    for label, adv, ok in (("DeepFool", x_df, ok_df), ("PGD", res.adv, res.success)):
        rho, s, khat = curvature_analysis.detection_scores(nets.twin, adv, draws, seed=seed)
        ok = ok.cpu().numpy()
        a, lo, hi = curvature_analysis.auc_ci(rho_nat, rho[ok], seed=seed)
        roc[f"{name}: natural vs {label}"] = (*curvature_analysis.roc_curve(rho_nat, rho[ok]), a)
        recovered = s.argmax(1) == y.cpu().numpy()
        recovered_min = np.where(np.isfinite(s), s, np.inf).argmin(1) == y.cpu().numpy()
        rows.append(
            {
                "dataset": name,
                "perturbation": label,
                "images": int(ok.sum()),
                "AUC": a,
                "CI low": lo,
                "CI high": hi,
                "natural: rho < 0": float((rho_nat < 0).mean()),
                "perturbed: rho > 0": float((rho[ok] > 0).mean()),
                "label recovery (t = 0)": float(recovered[ok].mean()),
                "post hoc: recovery by argmin": float(recovered_min[ok].mean()),
                "median perturbation norm": float((adv - x).flatten(1).norm(dim=1)[torch.as_tensor(ok)].median()),
            }
        )
    return rows, roc


def dynamics(nets, d, n_images, beta, seed, device, epochs, train_subset, at, lr=None):
    """The classifier retrained with checkpoints at the epochs `at` (lib.learn.checkpoints; `epochs`, `train_subset`,
    `lr` as for lib.learn.train.classifier_for), measured at each on `n_images` test images (seed + 4) by
    lib.studies.curvature.curvature_analysis.training_dynamics, with the accuracy on 1,000 test images. One row per
    epoch."""
    settings = {"n_images": n_images, "beta": beta, "seed": seed, "epochs": epochs, "train_subset": train_subset,
                "lr": lr, "at": list(at)}
    return _cached("dynamics", nets, d, settings, lambda: _dynamics(nets, d, n_images, beta, seed, device, epochs,
                                                                     train_subset, at, lr))


def _dynamics(nets, d, n_images, beta, seed, device, epochs, train_subset, at, lr):
    cps = checkpoints.classifier_checkpoints(d, seed, device, epochs, train_subset, at, lr)
    ids = experiment.pick_correct(nets.relu, d.test_x, d.test_y, n_images, seed + 4, device)
    return curvature_analysis.training_dynamics(cps, nets.ae, d.test_x[ids].to(device), d.test_y[ids].to(device), beta,
                                seed, d.test_x[:1000].to(device), d.test_y[:1000].to(device))


# What defines every section's cached measurements (lib.infra.artifacts).
CURVATURE = Artifact(
    "curvature",
    1,
    (
        cv,
        curvature_analysis,
        manifold,
        attacks,
        checkpoints,
        memo,
        experiment.pick_correct,
        experiment.input_gradient,
        nets_for,
        _boundary_spectra,
        _scale_sweep,
        _extremes,
        _shared_directions,
        _detection,
        _dynamics,
    ),
)
