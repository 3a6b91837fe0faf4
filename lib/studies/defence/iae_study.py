"""Notebook 07's I-AE beside the plain autoencoder it starts from: the plain autoencoder as a BatchNorm-free I-AE
(`plain_as_iae`), the λ sweep with the stated choice of λ (`lambda_sweep`, per data set `sweep_datasets`,
`sweep_table`), and how isometric each decoder is (`isometry`: singular values of J_D, re-encoding, the projection
property). Training and the measures
themselves are lib.learn.iae's."""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lib.geometry import manifold
from lib.infra import runtime
from lib.learn import iae


def width_of(ae):
    """Channels of the first conv layer of the autoencoder `ae` (lib.learn.models.ConvAutoencoder)."""
    return ae.feature_shape[0] // 4


def plain_as_iae(ae, x, generator):
    """The plain autoencoder `ae` (eval mode) as an I-AE network: its BatchNorm folded into the convolutions
    (lib.learn.iae.fold_batchnorm; Softplus(1), its own activation), the latent rescaled by the factor that makes it as
    isometric as one number can (lib.learn.iae.latent_scale at the images x, drawing from `generator`). D(E(x)) is the
    plain autoencoder's; returned on x's device in eval mode."""
    net = iae.fold_batchnorm(ae, iae.isometric_autoencoder(tuple(x.shape[1:]), ae.latent_dim, width_of(ae), 1.0))
    return iae.rescale_latent(net, iae.latent_scale(net, x, generator)).to(x.device).eval()


@dataclass
class Sweep:
    """The λ sweep of one data set: held-out terms (recon, iso, piso) of the plain autoencoder (latent rescaled) and
    of the I-AE at each λ, the trained I-AEs, and the chosen λ with the reason in words."""

    plain: dict
    terms: dict
    trained: dict
    lam: float
    why: str

    @property
    def chosen(self):
        return self.trained[self.lam]


def lambda_sweep(d, ae, lambdas, *, ae_subset, iae_subset, epochs, batch_size, lr, softplus_beta, tolerance, seed,
                 device, monitor=0, warm_start=True):
    """I-AEs at each λ, warm-started from the plain autoencoder `ae` (lib.learn.train.Trained; warm_start=False: from
    random weights, as Gropp et al. train, `ae` only the reference of the λ rule), trained on `iae_subset` of
    the `ae_subset` images the plain one saw (lib.learn.iae.get_iae, cached), measured on 500 held-out test images; λ
    chosen by lib.learn.iae.choose_lambda against the plain autoencoder's reconstruction error and `tolerance`. monitor
    > 0: the isometry criterion (lib.learn.iae.isometric_share) at that many test encodings after every epoch, in each
    history."""
    k = ae.model.latent_dim
    sub = d.subset(runtime.per_dataset(ae_subset, d.name), None, seed).subset(iae_subset, None, seed)
    held = d.test_x[:500].to(device)
    plain = iae.held_out_terms(plain_as_iae(ae.model, held, torch.Generator().manual_seed(seed)), held, seed)
    trained, terms = {}, {}
    for lam in lambdas:
        cfg = iae.IAEConfig(d.name, k, width_of(ae.model), lam, epochs, batch_size, lr, softplus_beta,
                            warm_start=ae.key if warm_start else "", seed=seed, monitor_images=monitor)
        trained[lam] = iae.get_iae(cfg, sub, device, warm=ae if warm_start else None)
        terms[lam] = iae.held_out_terms(trained[lam].model, held, seed)
    lam, why = iae.choose_lambda(terms, plain["recon"], tolerance)
    return Sweep(plain, terms, trained, lam, why)


def sweep_datasets(found, model_settings, lambdas, *, device, **sweep):
    """lambda_sweep on every data set of `found` ({name: Data}), from notebook 01's classifier and notebook 02's plain
    autoencoder (`model_settings`: the ModelSettings that lib.learn.session.start returns; the plain autoencoder's
    training subset is its);
    `sweep`: lambda_sweep's other keyword settings. Prints each model's summary and shows each choice of λ with its
    reason. Returns ({name: {"clf", "ae", "iae" (the chosen I-AE), "k" (latent dimension)}}, {name: Sweep})."""
    models, sweeps = {}, {}
    for name, d in found.items():
        clf, ae = model_settings.models(d, device)
        s = sweeps[name] = lambda_sweep(
            d, ae, lambdas, ae_subset=model_settings.ae_train_subset, device=device, **sweep
        )
        models[name] = {"clf": clf, "ae": ae, "iae": s.chosen, "k": ae.model.latent_dim}
        print(f"{name}: classifier {clf.summary()}, plain AE (k = {ae.model.latent_dim}) {ae.summary()}; "
              + "; ".join(f"I-AE λ={v:g} {t.summary()}" for v, t in s.trained.items()))
    for name, s in sweeps.items():
        runtime.show(f"**{name}**: {s.why}.")
    return models, sweeps


def histories(sweeps):
    """{data set: {λ: the I-AE's training history (lib.learn.iae: loss terms per step, isometry per epoch)}}."""
    return {name: {lam: t.meta["history"] for lam, t in s.trained.items()} for name, s in sweeps.items()}


def sweep_table(sweeps):
    """{data set: Sweep} as one table: the plain autoencoder's held-out terms, then each λ's with its training time."""
    return pd.DataFrame(
        [
            {"dataset": name, "model": "plain AE (latent rescaled)", "lambda": None, **s.plain}
            for name, s in sweeps.items()
        ]
        + [
            {"dataset": name, "model": "I-AE", "lambda": lam, **t, "train s": s.trained[lam].meta["train_seconds"]}
            for name, s in sweeps.items()
            for lam, t in s.terms.items()
        ]
    )


def isometry(name, ae, net_iae, x, radius, seed):
    """The plain autoencoder `ae` (as `plain_as_iae`, scaled at x) and the I-AE `net_iae` at the test images x: the
    singular values σ of J_D at their encodings (all 1 for an isometry), the per-image spread mean|log σ|, the
    re-encoding error at the data's and at sampled encodings, and the projection ratios of a normal and a tangent
    perturbation of norm `radius` (0 and 1 for an orthogonal projection). One generator (seeded) serves the scale
    and every draw, in that order. Returns (rows, {label: σ (B, k)}, {label: spread (B,)})."""
    g = torch.Generator().manual_seed(seed)
    plain = plain_as_iae(ae, x, g)
    rows, sv_values, spread = [], {}, {}
    for label, net in (("plain AE", plain), ("I-AE", net_iae)):
        z = net.encode(x).detach()
        sv = iae.decoder_singular_values(net, z)
        sv_values[label] = sv.cpu().numpy()
        spread[label] = sv.log().abs().mean(1).cpu().numpy()
        normal, tangent = iae.projection_ratios(net, x, manifold.tangent_basis(net, x), radius, g)
        zs = iae.gaussian_latents(z, g)
        rows.append({"dataset": name, "model": label, "median σ": float(sv.median()),
                     "σ 5%": float(sv.quantile(0.05)), "σ 95%": float(sv.quantile(0.95)),
                     f"share of σ within ±{iae.ISO_TOLERANCE:.0%}": iae.isometric_share(sv),
                     "median max σ / min σ": float((sv[:, 0] / sv[:, -1]).median()),
                     "median spread mean|log σ|": float(np.median(spread[label])),
                     "re-encoding error (data)": float(iae.reencoding_error(net, z).median()),
                     "re-encoding error (sampled z)": float(iae.reencoding_error(net, zs).median()),
                     "normal ratio": float(normal.median()), "tangent ratio": float(tangent.median())})
    return rows, sv_values, spread


def isometry_table(models, found, n_images, radius, seed, device):
    """`isometry` for every data set of `models` ({name: {"ae", "iae"}}), at its first `n_images` test images:
    (one table of every data set's rows, {name: {label: σ}}, {name: {label: spread}})."""
    rows, sv_values, spread = [], {}, {}
    for name, m in models.items():
        r, sv_values[name], spread[name] = isometry(
            name, m["ae"].model, m["iae"].model, found[name].test_x[:n_images].to(device), radius, seed)
        rows += r
    return pd.DataFrame(rows), sv_values, spread

