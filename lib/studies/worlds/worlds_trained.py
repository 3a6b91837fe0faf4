"""Positive controls with trained networks (notebook 08, worlds 2 and 3): the manifold is known, the classifier
is learned, and the question is whether training makes a dimple.

World 2 (Melamed, Yehudai & Vardi 2023): ten classes as clusters inside a known k-dimensional linear subspace
x = c + U z (lib.studies.worlds.worlds.linear_manifold), the MLP of notebook 01 (lib.learn.models.mnist_mlp) trained on
them by lib.learn.train.fit. Their result: a two-layer ReLU network trained on such data has a large gradient orthogonal
to the subspace, which a smaller initialisation scale or L2 regularisation shrinks. The mechanism: the loss gradient
with respect to the first layer's weights is (error) x^T, with x in the data's span, so the first layer's weights off
that span keep their initial values (shrunk only by weight decay, by exp(-lr * wd * steps)). The sweep scales the
first layer's initial weights (deeper layers scaled too would stall SGD at lr 0.01) and sets the weight decay.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats as sps

from lib.experiments import experiment
from lib.geometry import subspaces
from lib.infra.runtime import escape, show
from lib.learn import data, models, train
from lib.studies.worlds import worlds
from lib.experiments.shards import input_gradient


def cluster_world(k=16, classes=10, n_train=2000, n_test=500, seed=0, radius=1.5, noise=0.3):
    """World 2's data: (manifold, train_x, train_y, test_x, test_y); class c's points are c + U (mu_c + e), mu_c
    at `radius` in a random direction of R^k, e Gaussian of norm about `noise`."""
    m = worlds.linear_manifold(k, 1, seed)
    g = torch.Generator().manual_seed(seed + 2)
    mu = torch.randn(classes, k, generator=g)
    mu = radius * mu / mu.norm(dim=1, keepdim=True)

    def draw(count):
        y = torch.randint(0, classes, (count,), generator=g)
        return m.point(mu[y] + noise / np.sqrt(k) * torch.randn(count, k, generator=g)), y

    tx, ty = draw(n_train)
    x, y = draw(n_test)
    return m, tx, ty, x, y


def trained_mlp(tx, ty, init_scale=1.0, weight_decay=0.0, epochs=60, seed=0, device="cpu"):
    """Notebook 01's MLP, its first layer's initial weights times init_scale, trained by lib.learn.train.fit (SGD, lr
    0.01, batch 200: the paper's MNIST setting) with this weight decay. Returns (model, config)."""
    cfg = train.ClassifierConfig("mnist", "mlp", epochs, 200, 0.01, "sgd", weight_decay=weight_decay, seed=seed)
    torch.manual_seed(seed)
    model = models.mnist_mlp("mnist")
    with torch.no_grad():
        model[2].weight.mul_(init_scale)
    model, _ = train.fit(
        model, tx, ty, F.cross_entropy, cfg, device, desc=f"MLP init x{init_scale:g} wd {weight_decay:g}"
    )
    return model, cfg


def gradient_split(model, x, y, U):
    """Per image: the norms of the attack loss's input gradient (lib.experiments.shards.input_gradient, margin loss) in
    span(U) and off it, and the share of its energy in span(U)."""
    g = input_gradient(model.eval(), x, y).flatten(1).detach()
    on = g @ U
    total = g.pow(2).sum(1)
    off = (total - on.pow(2).sum(1)).clamp_min(0)
    return pd.DataFrame({"grad_on": on.norm(dim=1).numpy(), "grad_off": off.sqrt().numpy(),
                         "share": (on.pow(2).sum(1) / total).numpy()})


def melamed_sweep(init_scales=(1.0, 0.25, 0.0625), weight_decays=(0.0, 1e-4, 1e-3), settings=None, k=16,
                  n_images=50, n_train=2000, epochs=60, seed=0, progress=None):
    """World 2 at each setting (the initialisation sweep at weight decay weight_decays[0], the weight-decay sweep
    at init_scales[0]): (per-image gradient table, attack records or None without settings, a summary per
    setting). Records' data sets are named "world 2 · init ×s, wd d"; settings: {condition: AttackSettings}."""
    m, tx, ty, x, y = cluster_world(k, n_train=n_train, n_test=4 * n_images, seed=seed)
    grids = [("init scale", s, weight_decays[0]) for s in init_scales] + \
            [("weight decay", init_scales[0], d) for d in weight_decays[1:]]
    means = experiment.class_means(tx, ty)
    grads, frames, summary = [], [], []
    for knob, s, d in (progress(grids) if progress else grids):
        model, cfg = trained_mlp(tx, ty, s, d, epochs, seed)
        keep = experiment.pick_correct(model, x, y, n_images, seed)
        xi, yi = x[keep], y[keep]
        name = f"world 2 · init ×{s:g}, wd {d:g}"
        gs = gradient_split(model, xi, yi, m.U).assign(knob=knob, init_scale=s, weight_decay=d, image=keep.numpy())
        grads.append(gs)
        steps = epochs * int(np.ceil(len(tx) / cfg.batch_size))
        summary.append({"setting": name, "knob": knob, "init scale": s, "weight decay": d,
                        "test accuracy": train.accuracy(model, x, y, "cpu"),
                        "median ‖P_off g‖": gs["grad_off"].median(), "median ‖P_on g‖": gs["grad_on"].median(),
                        "median tangent share": gs["share"].median(),
                        "weight decay's shrink of untrained weights": float(np.exp(-cfg.lr * d * steps))})
        if settings is not None:
            spaces = {"tangent": subspaces.TangentSubspace(m.U),
                      "random": subspaces.RandomSubspace(m.U.shape[0], k, batch=len(xi), seed=seed, ids=keep.tolist())}
            frames.append(worlds.attack_records(model, xi, yi, spaces, settings, means, keep.numpy(), dataset=name,
                                                split="test").assign(world="synthetic"))
    records = pd.concat(frames, ignore_index=True) if frames else None
    return pd.concat(grads, ignore_index=True), records, pd.DataFrame(summary)


def trend_test(grads, knob, column="grad_off", predicted="decreasing"):
    """Page's trend test over one knob's settings, images as blocks (the same test images where every setting
    classifies them correctly): does `column` fall (predicted "decreasing") along the knob's order (the init
    scale shrinking, the weight decay growing)? Returns {knob, settings, images, L, p}."""
    g = grads[grads["knob"].isin([knob, "init scale"])]  # the knob's sweep starts at the shared setting
    key = "init_scale" if knob == "init scale" else "weight_decay"
    levels = sorted(g[key].unique(), reverse=(knob == "init scale"))
    if knob != "init scale":
        g = g[g["init_scale"] == g["init_scale"].max()]
    wide = g.drop_duplicates(["image", key]).pivot(index="image", columns=key, values=column)[levels].dropna()
    if len(levels) < 3 or len(wide) < 2:
        return {"knob": knob, "settings": len(levels), "images": len(wide), "L": np.nan, "p": np.nan}
    ranks = list(range(len(levels), 0, -1)) if predicted == "decreasing" else list(range(1, len(levels) + 1))
    r = sps.page_trend_test(wide.to_numpy(), ranked=False, predicted_ranks=ranks)
    return {"knob": knob, "order": " → ".join(f"{v:g}" for v in levels), "images": len(wide),
            "L": float(r.statistic), "p": float(r.pvalue)}


def trend_table(grads):
    """trend_test along each knob of the gradient off the subspace (predicted to fall) and of its energy share in the
    subspace (predicted to rise): one row per knob and measure."""
    return pd.DataFrame([trend_test(grads, knob, col, pred) | {"measure": col, "predicted": pred}
                         for knob in ("init scale", "weight decay")
                         for col, pred in (("grad_off", "decreasing"), ("share", "increasing"))])


# ---------------------------------------------------------------- world 3: a curved manifold of images

def overlap(Qa, Qb):
    """||Qa^T Qb||_F^2 / k per image (Qa, Qb: (B, n, k) or (n, k) orthonormal): the mean squared cosine of the
    principal angles between two k-dimensional subspaces; 1 for the same subspace, about k/n for random ones."""
    return (Qa.transpose(-2, -1) @ Qb).pow(2).sum((-2, -1)) / Qa.shape[-1]


def decoder_world(decoder, codes, classes=10, n_test=200, seed=0):
    """World 3's data: images G(z) of latent codes z (codes: (N, k), e.g. an MNIST autoencoder's encodings of
    MNIST images), labelled by the nearest of `classes` cluster centres (centres: codes drawn at random, then
    one k-means step). Returns (train_x, train_y, test_x, test_y, test codes)."""
    g = torch.Generator().manual_seed(seed + 3)
    codes = codes[torch.randperm(len(codes), generator=g)]
    centres = codes[:classes].clone()
    label = torch.cdist(codes, centres).argmin(1)
    centres = torch.stack([codes[label == c].mean(0) if (label == c).any() else centres[c] for c in range(classes)])
    label = torch.cdist(codes, centres).argmin(1)
    with torch.no_grad():
        x = torch.cat([decoder(z) for z in codes.split(500)])
    return x[n_test:], label[n_test:], x[:n_test], label[:n_test], codes[:n_test]


def true_tangent(decoder, z):
    """Orthonormal bases (B, n, k) of the column space of J_G at each code z: the true tangent space at G(z)."""
    from lib.geometry.manifold import decoder_jacobian
    with torch.no_grad():
        return torch.linalg.qr(decoder_jacobian(decoder, z), mode="reduced").Q


def gradient_fraction(model, x, y, Q):
    """||P g|| / ||g|| per image (not squared, as Bordt et al. 2023 report it) for the attack loss's input gradient
    g and the subspaces Q ((B, n, k) or (n, k))."""
    g = input_gradient(model.eval(), x, y).flatten(1).detach()
    on = (Q.transpose(-2, -1) @ g.unsqueeze(-1)).squeeze(-1) if Q.dim() == 3 else g @ Q
    return (on.norm(dim=-1) / g.norm(dim=1)).numpy()


def decoder_world_study(generator, codes, settings, k=16, n_images=50, n_train=2000, clf_epochs=20, ae_epochs=10,
                        ae_width=8, seed=0):
    """World 3 end to end: images G(z) labelled by latent clusters (decoder_world), notebook 01's MLP and a fresh
    conv autoencoder of the same k trained on them (lib.learn.train.fit), then per test image the overlap of the fresh
    autoencoder's tangent space with the true one, the gradient fractions ||P g|| / ||g|| in the true tangent space,
    the autoencoder's and a random subspace, and attack records (data sets "world 3 · true tangent" and "world 3 ·
    autoencoder's tangent", each with the random control). generator: an autoencoder (G = its decoder)."""
    from lib.geometry import manifold
    dec = generator.decoder_at()
    tx, ty, x, y, z = decoder_world(dec, codes[: n_train + 4 * n_images], n_test=4 * n_images, seed=seed)
    cfg = train.ClassifierConfig("mnist", "mlp", clf_epochs, 200, 0.01, "sgd", weight_decay=1e-4, seed=seed)
    torch.manual_seed(seed)
    clf, _ = train.fit(models.mnist_mlp("mnist"), tx, ty, F.cross_entropy, cfg, "cpu", desc="world 3 classifier")
    torch.manual_seed(seed)
    ae_cfg = train.AutoencoderConfig("mnist", "conv", k, ae_epochs, 144, 1e-3, width=ae_width, seed=seed)
    ae, history = train.fit(models.ConvAutoencoder(1, 28, k, ae_width), tx, None, F.mse_loss, ae_cfg, "cpu",
                            desc="world 3 fresh autoencoder")
    keep = experiment.pick_correct(clf, x, y, n_images, seed)
    xi, yi, zi = x[keep], y[keep], z[keep]
    Q_true, Q_ae = true_tangent(dec, zi), manifold.tangent_basis(ae, xi)
    random = subspaces.RandomSubspace(xi[0].numel(), k, batch=len(xi), seed=seed, ids=keep.tolist())
    per_image = pd.DataFrame({"overlap (AE vs true)": overlap(Q_ae, Q_true).numpy(),
                              "fraction: true tangent": gradient_fraction(clf, xi, yi, Q_true),
                              "fraction: AE tangent": gradient_fraction(clf, xi, yi, Q_ae),
                              "fraction: random": gradient_fraction(clf, xi, yi, random.Q)})
    means = experiment.class_means(tx, ty)
    records = pd.concat(
        [
            worlds.attack_records(
                clf,
                xi,
                yi,
                {"tangent": subspaces.TangentSubspace(Q), "random": random},
                settings,
                means,
                keep.numpy(),
                dataset=name,
                split="test",
            )
            for name, Q in (("world 3 · true tangent", Q_true), ("world 3 · autoencoder's tangent", Q_ae))
        ],
        ignore_index=True,
    ).assign(world="synthetic")
    facts = {"classifier test accuracy": train.accuracy(clf, x, y, "cpu"), "fresh AE train MSE": history[-1],
             "class sizes": torch.bincount(ty, minlength=10).tolist(), "images": len(xi)}
    return per_image, records, facts


def curved_world(settings, k=16, n_images=50, *, g_epochs, g_train, g_width, n_train, clf_epochs, ae_epochs, margin,
                 seed=0):
    """World 3 on MNIST: G is the decoder of an MNIST autoencoder (lib.learn.train.autoencoder_for, cached: latent k,
    first conv width g_width, `g_epochs` epochs on `g_train` images), the codes its encodings of the first
    n_train + 4 n_images MNIST training images; then decoder_world_study (settings: {condition: AttackSettings}) and
    the verdict rows of its records (lib.studies.worlds.worlds.world_rows, negligible band `margin`), G shown on the
    page. Without MNIST: a notice on the page, no rows, an empty table, no facts. Returns (rows, per-image table, facts;
    facts["mnist_source"]: the MNIST it used, in words)."""
    try:
        mnist = data.load("mnist")
    except data.DatasetUnavailable as err:
        show(f"> **World 3 skipped: MNIST is not available** ({escape(err)}); G is an MNIST autoencoder's decoder.")
        return [], pd.DataFrame(), {}
    G = train.autoencoder_for(mnist, seed, epochs=g_epochs, train_subset=g_train, latent_dim=k, width=g_width)
    with torch.no_grad():
        codes = torch.cat([G.model.encode(b) for b in mnist.train_x[: n_train + 4 * n_images].split(500)])
    per_image, records, facts = decoder_world_study(G.model, codes, settings, k, n_images, n_train, clf_epochs,
                                                    ae_epochs, g_width, seed)
    rows = worlds.world_rows(records, margin)
    sizes = facts["class sizes"]
    show(f"G: MNIST autoencoder ({mnist.describe()[:60]}…), {G.summary()}; world 3: {sum(sizes):,} training images "
         f"G(z), each labelled by the nearest of 10 cluster centres of the codes ({min(sizes):,} to {max(sizes):,} per "
         f"class), {facts['images']:,} test images attacked, the classifier's test accuracy "
         f"{facts['classifier test accuracy']:.1%}, the fresh autoencoder's final training MSE "
         f"{facts['fresh AE train MSE']:.2g}.")
    return rows, per_image, {**facts, "mnist_source": mnist.describe()}


def fraction_table(per_image, k=16, n=worlds.N):
    """World 3's per-image measures (decoder_world_study), mean and median, beside what random subspaces give (overlap
    k/n, gradient fraction about √(k/n)) and Bordt et al. 2023's published fractions."""
    t = pd.DataFrame({"mean": per_image.mean(), "median": per_image.median()}).T
    t["k/n (overlap of random subspaces)"], t["√(k/n) (random fraction)"] = k / n, np.sqrt(k / n)
    t["Bordt et al.: LeNet / random / adv. trained"] = "0.31 / 0.096 / 0.675 (k = 10, d = 1024)"
    return t
