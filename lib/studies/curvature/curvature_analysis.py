"""Notebook 06's measurements on top of lib.boundary.curvature: per-image curvature records at DeepFool boundary points,
the autoencoder's tangent space against a random subspace of the same k, shared curved directions (Fawzi et al.
2018, Table 1 and Figure 7), curvature-based detection (their Algorithm 2), and the verdict rows.

Records are plain per-image tables (one row per image); tests on them come from lib.inference.stats, the verdict rule
from lib.inference.verdicts."""
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from lib.inference import verdicts
from lib.boundary import curvature as cv
from lib.geometry.manifold import tangent_basis
from lib.inference.rules import Verdict


def measure(model, ae, x, *, h=None, seed=0, full=True, chunk=128):
    """Per image: the boundary point (DeepFool + bisection); with full=True every principal curvature (G applied to
    all n pixel directions; eigenvalues only); the shape operator restricted to the tangent space of `ae` at the clean
    image x and to a random orthonormal subspace of the same k (one draw per image: 2k HVPs), and the normal's share
    in each. Returns (records DataFrame, principal curvatures (B, n-1) ascending or None, BoundaryPoints)."""
    bp = cv.boundary_points(model, x)
    op = cv.ShapeOperator(model, bp.z, bp.i, bp.j, h, chunk)
    kappa = cv.principal_curvatures(op.dense(), op.normal, vectors=False)[0] if full else None
    Q = tangent_basis(ae, x)
    R = cv.random_bases(len(x), op.n, Q.shape[-1], torch.Generator().manual_seed(seed), dtype=Q.dtype)
    tan, rnd = cv.subspace_curvature(op, Q), cv.subspace_curvature(op, R)
    nan = np.full(len(x), np.nan)
    rec = pd.DataFrame(
        {
            "distance": bp.r.flatten(1).norm(dim=1).numpy(),
            "deepfool_success": bp.success.numpy(),
            "i": bp.i.numpy(),
            "j": bp.j.numpy(),
            "grad_norm": op.grad_norm.numpy(),
            "mean_curvature": kappa.mean(1).numpy() if full else nan,
            "min_curvature": kappa[:, 0].numpy() if full else nan,
            "max_curvature": kappa[:, -1].numpy() if full else nan,
            **{f"tangent_{k}": v.numpy() for k, v in tan.items()},
            **{f"random_{k}": v.numpy() for k, v in rnd.items()},
            "tangent_normal_share": cv.normal_share(op.normal, Q).numpy(),
            "random_normal_share": cv.normal_share(op.normal, R).numpy(),
            "k": Q.shape[-1],
            "n": op.n,
        }
    )
    return rec, kappa, bp


def mean_profile(kappa):
    """The curvature profile of Fawzi et al.: each image's principal curvatures sorted, averaged index by index."""
    return np.sort(np.asarray(kappa), axis=1).mean(0)


# ---------------------------------------------------------------- shared curved directions

def shared_subspace(kappa, dirs, per_point, dim):
    """S (n, dim): the top `per_point` principal directions by |curvature| of every point, stacked as columns of M,
    and the `dim` leading left singular vectors of M (Fawzi et al. 2018, section 4)."""
    if dim > per_point * len(kappa):
        raise ValueError(f"dim must be <= per_point * points = {per_point * len(kappa)}, got {dim}")
    top = torch.as_tensor(kappa).abs().argsort(1, descending=True)[:, :per_point]
    M = torch.cat([dirs[b][:, top[b]] for b in range(len(kappa))], 1)
    return torch.linalg.svd(M.double(), full_matrices=False).U[:, :dim].float()


def share_in(S, v):
    """||P_S v|| / ||v|| per row of v (B, ...), S (n, d) orthonormal."""
    v = v.flatten(1).float()
    return ((v @ S).norm(dim=1) / v.norm(dim=1)).numpy()


@torch.no_grad()
def noise_misclassification(model, x, S, norms, draws=5, seed=0):
    """Share of images whose label changes under Gaussian noise of L2 norm `norm` drawn in span(S) or in its
    orthogonal complement (no clipping: the geometry, not the box); a DataFrame norm x subspace -> rate."""
    g = torch.Generator().manual_seed(seed)
    label = model(x).argmax(1)
    rows = []
    for norm in norms:
        for name in ("S", "S-perp"):
            changed = []
            for _ in range(draws):
                e = torch.randn(len(x), x[0].numel(), generator=g)
                on = e @ S @ S.T
                v = on if name == "S" else e - on
                v = norm * v / v.norm(dim=1, keepdim=True)
                changed.append((model(x + v.view_as(x)).argmax(1) != label).float())
            rows.append({"norm": float(norm), "subspace": name, "rate": float(torch.stack(changed).mean())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- detection (Algorithm 2)

def detection_scores(model, x, T=20, h=None, seed=0):
    """Algorithm 2 of Fawzi et al. 2018 at the inputs x themselves: with k the predicted label and F_c = f_c - f_k,
    s_c = (1/T) sum_t v_t^T G_{F_c}(x) v_t over T uniform unit vectors v_t, G_{F_c} the shape operator of F_c's level
    set through x. Returns (rho = sum_c s_c / L (B,), s (B, L) with s[:, k] = -inf, k (B,)).
    A high rho flags "perturbed"; argmax_c s_c is the recovered label."""
    with torch.no_grad():
        k = model(x).argmax(1)
    B, n = len(x), x[0].numel()
    L = model(x[:1]).shape[1]
    V = torch.nn.functional.normalize(
        torch.randn(B, T, n, generator=torch.Generator().manual_seed(seed), dtype=x.dtype), dim=2
    )
    s = torch.full((B, L), float("-inf"), dtype=x.dtype)
    for c in range(L):
        others = k != c
        if not others.any():
            continue
        op = cv.ShapeOperator(model, x[others], k[others], torch.full_like(k[others], c), h=h)
        s[others, c] = (op.apply(V[others]) * V[others]).sum(2).mean(1)
    finite = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
    return (finite.sum(1) / L).numpy(), s.numpy(), k.numpy()


def auc(negatives, positives):
    """P(score of a positive > score of a negative) + ties / 2: the area under the ROC curve (Mann-Whitney)."""
    neg, pos = np.asarray(negatives, float), np.asarray(positives, float)
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + ties / 2)


def auc_reading(value):
    """How to read a detection AUC, in words: 0.5 is chance; below it the score ranks the wrong way."""
    if value < 0.5:
        return ("below 0.5: the score points the wrong way (on this network natural images see the more positive "
                "curvature)")
    return "0.5 is chance, 1 a perfect detector"


def auc_ci(negatives, positives, n_boot=2000, level=0.95, seed=0):
    """AUC with a percentile bootstrap interval (negatives and positives resampled separately): (auc, lo, hi)."""
    rng = np.random.default_rng(seed)
    neg, pos = np.asarray(negatives, float), np.asarray(positives, float)
    boots = [auc(rng.choice(neg, len(neg)), rng.choice(pos, len(pos))) for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return auc(neg, pos), float(lo), float(hi)


def roc_curve(negatives, positives):
    """(false-positive rate, true-positive rate) over every threshold, scores above it flagged."""
    thresholds = np.unique(np.concatenate([negatives, positives]))[::-1]
    fpr = np.array([0.0] + [(np.asarray(negatives) >= t).mean() for t in thresholds])
    tpr = np.array([0.0] + [(np.asarray(positives) >= t).mean() for t in thresholds])
    return fpr, tpr


# ---------------------------------------------------------------- claims

FAMILY = "06 · curvature"
FAMILY_CHECKS = "06 · curvature, ReLU check"
CLAIMS = {  # id: (short label, the claim in words)
    "06a": ("06a boundary flatter along the manifold",
            "RMS curvature in the tangent space < in a random subspace of the same k"),
    "06b": ("06b normal off the manifold",
            "the boundary normal's share in the tangent space < in a random subspace of the same k"),
}
MEASURES = {"06a": ("tangent_rms", "random_rms"), "06b": ("tangent_normal_share", "random_normal_share")}


def paired_log_ratio_row(claim_id, dataset, split, a, b, predicted, margin=np.log(1.1)):
    """One "difference" Row (lib.inference.verdicts) on per-image log(a / b), exact values: one-sided sign
    tests toward ``predicted`` of no effect and of the margin, the median with a distribution-free 95% interval.
    A precise null against a random subspace of the same k is "explained by dimension alone"."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    usable = (a > 0) & (b > 0)  # a zero (e.g. a piecewise-linear net probed between its kinks) has no log ratio
    d = np.log(a[usable]) - np.log(b[usable])
    left_out = int((~usable).sum())
    short, text = CLAIMS[claim_id]
    row = verdicts.location_row(claim_id, short, text, dataset, split, d, predicted=predicted, margin=margin,
                                null_verdict=Verdict.DIMENSION)
    if left_out:
        row = replace(row, statistic=row.statistic + f"; {left_out} images with a zero value left out")
    return row


def verdict_tables(records, margin=np.log(1.1)):
    """Notebook 06's verdicts: claims 06a and 06b per data set and split on the softplus twin's records (one Holm
    family), and the same on the ReLU MLP's finite differences (a check, its own family)."""
    rows, checks = [], []
    for (name, split, method), r in records.groupby(["dataset", "split", "method"]) if len(records) else []:
        out = rows if method == "softplus twin" else checks
        for cid, (a, b) in MEASURES.items():
            out.append(paired_log_ratio_row(cid, name, split, r[a], r[b], "less", margin))
    return verdicts.judge(rows, FAMILY), verdicts.judge(checks, FAMILY_CHECKS)


def answer(table) -> list[str]:
    """One sentence per data set and split from the verdict table: claims 06a and 06b's ratios and verdicts."""
    out = []
    for (name, split), t in table.groupby(["dataset", "split"], sort=False) if len(table) else []:
        v = {r["claim_id"]: r for r in t.to_dict("records")}
        parts = [f"the boundary is {v['06a']['effect_text'].split(' (')[0]} as curved inside the autoencoder's tangent "
                 f"space as inside a random subspace of the same k ({v['06a']['verdict']})" if "06a" in v else "",
                 f"the boundary normal holds {v['06b']['effect_text'].split(' (')[0]} a random subspace's share of it "
                 f"({v['06b']['verdict']})" if "06b" in v else ""]
        out.append(f"{name} ({split} images, softplus twin): " + "; ".join(p for p in parts if p)
                   + ". DMM's picture (a boundary running flat along the manifold, its normal off it) predicts both "
                     "below 1.")
    return out


# ---------------------------------------------------------------- training dynamics

def training_dynamics(checkpoints, ae, x, y, beta=10.0, seed=0, test_x=None, test_y=None):
    """Per checkpoint {epoch: classifier}: the medians over the images x (labels y) of the margin-loss gradient's
    energy share in the autoencoder's tangent space and in a random subspace of the same k, their per-image log
    ratio, the DeepFool distance to the boundary, and (softplus twin) the mean and RMS principal curvature and the
    tangent / random RMS curvature ratio; plus the accuracy on (test_x, test_y). One row per epoch."""
    from lib.experiments.experiment import input_gradient

    Q = tangent_basis(ae, x)
    R = cv.random_bases(len(x), x[0].numel(), Q.shape[-1], torch.Generator().manual_seed(seed), dtype=Q.dtype)
    rows = []
    for epoch, model in sorted(checkpoints.items()):
        g = input_gradient(model, x, y).flatten(1)
        share_t = (torch.einsum("bnk,bn->bk", Q, g).pow(2).sum(1) / g.pow(2).sum(1)).numpy()
        share_r = (torch.einsum("bnk,bn->bk", R, g).pow(2).sum(1) / g.pow(2).sum(1)).numpy()
        bp = cv.boundary_points(model, x)
        twin = cv.softplus_twin(model, beta)
        (kappa, _), op = cv.spectrum(twin, cv.boundary_points(twin, x), vectors=False)
        tan, rnd = cv.subspace_curvature(op, Q), cv.subspace_curvature(op, R)
        row = {"epoch": epoch, "gradient share, tangent": float(np.median(share_t)),
               "gradient share, random": float(np.median(share_r)),
               "tangent / random gradient share": float(np.exp(np.median(np.log(share_t / share_r)))),
               "distance to boundary": float(bp.r.flatten(1).norm(dim=1).median()),
               "mean curvature": float(kappa.mean()), "RMS curvature": float(kappa.pow(2).mean().sqrt()),
               "tangent / random RMS curvature": float(torch.exp(torch.log(tan["rms"] / rnd["rms"]).median()))}
        if test_x is not None:
            with torch.no_grad():
                row["test accuracy"] = float((model(test_x).argmax(1) == test_y).float().mean())
        rows.append(row)
    return pd.DataFrame(rows)
