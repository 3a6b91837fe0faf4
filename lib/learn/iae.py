"""The Isometric Autoencoder (I-AE; Gropp, Atzmon & Lipman 2020): its loss, training, and measures of isometry.

I-AE asks the decoder D to be an isometry, ||J_D(z) u|| = 1 for every unit latent u, and the encoder E
to be D's pseudo-inverse, ||u^T J_E(x)|| = 1; near the data D(E(.)) is then the orthogonal projection
onto the learned manifold (the defence of Karner, "The Dimpled Manifold Revisited", section 4.2).
The objective, with ONE weight lambda for both regularisers:

    L = E_x ||D(E(x)) - x||^2  +  lambda (L_iso + L_piso)
    L_iso  = E_{z,u} (||J_D(z) u|| - 1)^2     z ~ N(mean, diag(std^2)) fitted to the batch's encodings
    L_piso = E_{x,u} (||u^T J_E(x)|| - 1)^2   u = g / ||g||, g ~ N(0, I_k): one draw per image and step

The reconstruction error is summed over pixels and averaged over images; the norms are those of whole
vectors (not the element-wise ||J u - 1||^2, a mistake of the reproduction's code). J_D u is a jvp and
u^T J_E a vjp (torch.func), both differentiable in the weights, so no Jacobian is ever formed.

The model is the conv autoencoder of lib.learn.models with Softplus(beta) activations (beta = 100 in Gropp et
al., close to ReLU; beta = 1 is the plain autoencoder's own: both are twice differentiable).
BatchNorm: torch.func cannot transform a train-mode BatchNorm (it updates running statistics in place);
a mixed scheme (Jacobian terms in eval mode, reconstruction in train mode) optimises two different
functions, and the eval-mode network, the one that is used, drifts away from the train-mode one that
reconstructs (measured: held-out reconstruction error 9 -> 50 in 20 steps); eval mode throughout
makes Adam's steps on the convolutions act through 1/sqrt(running var), and even the reconstruction
alone diverges at lr 1e-3 (9 -> 93 in 10 steps). So the I-AE is the plain architecture WITHOUT
BatchNorm: a warm start folds the plain autoencoder's eval-mode BatchNorm into the convolution before
it (the same function, exactly), and every term is a term of the function that is evaluated.
"""
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.func import jvp, vjp

from lib.infra import cache
from lib.learn import activations, models, train
from lib.infra.artifacts import Artifact
from lib.geometry.manifold import decoder_jacobian, eval_mode
from lib.infra.runtime import progress

# torch's forward-AD loads its jvp decompositions through torch.jit.script the first time a jvp runs, and that warns
# of the deprecation (torch-internal, nothing this module calls): only that warning, as lib.geometry.manifold does
warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)

@dataclass(frozen=True)
class IAEConfig:
    dataset: str
    latent_dim: int
    width: int                    # channels of the first conv layer (as the plain autoencoder's)
    lam: float                    # lambda: the one weight of L_iso + L_piso
    epochs: int
    batch_size: int = 144
    lr: float = 1e-3
    softplus_beta: float = 100.0  # Gropp et al.'s activation
    warm_start: str = ""          # cache key of the plain autoencoder whose weights it starts from ("": random init)
    grad_clip: float = 0.0        # > 0: clip the gradient norm to this
    seed: int = 0
    monitor_images: int = 0       # > 0: the isometry criterion at this many test encodings after every epoch
    optimizer: str = "adam"       # lib.learn.train.make_optimizer
    weight_decay: float = 0.0


# The isometry criterion: the share of the singular values of J_D at test encodings within +-ISO_TOLERANCE of 1;
# the decoder counts as isometric when that share reaches ISO_TARGET.
ISO_TOLERANCE = 0.25
ISO_TARGET = 0.9


def isometric_share(sv, tolerance=ISO_TOLERANCE):
    """Share of the singular values `sv` (any shape) with |σ - 1| <= tolerance: 1 for an isometry."""
    return float(((sv - 1).abs() <= tolerance).float().mean())


def isometric_autoencoder(shape, latent_dim, width, softplus_beta=100.0):
    """lib.learn.models.ConvAutoencoder without BatchNorm (each replaced by an identity) and with every Softplus
    replaced by Softplus(beta): the same layers otherwise, so a plain autoencoder loads into it by
    `fold_batchnorm` (exactly, as the eval-mode function)."""
    ae = models.ConvAutoencoder(shape[0], shape[1], latent_dim, width)
    for seq in (ae.encoder, ae.decoder):
        for i, m in enumerate(seq):
            if isinstance(m, nn.Softplus):
                seq[i] = activations.Softplus(beta=softplus_beta)
            elif isinstance(m, nn.BatchNorm2d):
                seq[i] = nn.Identity()
    return ae


@torch.no_grad()
def fold_batchnorm(plain, target):
    """Load the plain autoencoder `plain` into the BatchNorm-free `target`: each eval-mode BatchNorm
    y = gamma (h - mean) / sqrt(var + eps) + beta is folded into the (transposed) convolution before it.
    Returns target, whose function equals plain's eval-mode function when their activations agree."""
    for src, dst in ((plain.encoder, target.encoder), (plain.decoder, target.decoder)):
        for i, m in enumerate(src):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                w, b = m.weight.clone(), m.bias.clone()
                bn = src[i + 1] if i + 1 < len(src) and isinstance(src[i + 1], nn.BatchNorm2d) else None
                if bn is not None:
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    axis = 1 if isinstance(m, nn.ConvTranspose2d) else 0
                    w = w * scale.view([-1 if d == axis else 1 for d in range(w.dim())])
                    b = (b - bn.running_mean) * scale + bn.bias
                dst[i].weight.copy_(w)
                dst[i].bias.copy_(b)
    return target


def unit_latents(batch, k, generator=None, dtype=torch.float32, device=None):
    """u = g / ||g|| with g ~ N(0, I_k): (batch, k), uniform on the unit sphere."""
    g = torch.randn(batch, k, generator=generator, dtype=dtype).to(device)
    return g / g.norm(dim=1, keepdim=True)


def gaussian_latents(encodings, generator=None):
    """z ~ N(mean, diag(std^2)) with mean and std of each latent coordinate over the batch's encodings
    (detached: the sampling distribution is not trained), one z per encoding."""
    e = encodings.detach()
    mean, std = e.mean(0), e.std(0) if len(e) > 1 else torch.zeros_like(e[0])
    return mean + std * torch.randn(e.shape, generator=generator, dtype=e.dtype).to(e.device)


def iso_loss(decode, z, u):
    """L_iso = mean over rows of (||J_D(z) u|| - 1)^2, J_D u by one forward-mode jvp of the batch
    (the rows of z must be decoded independently: BatchNorm in eval mode)."""
    _, ju = jvp(decode, (z,), (u,))
    return ((ju.flatten(1).norm(dim=1) - 1) ** 2).mean()


def piso_loss(encode, x, u):
    """L_piso = mean over rows of (||u^T J_E(x)|| - 1)^2, u^T J_E by one reverse-mode vjp of the batch."""
    _, pullback = vjp(encode, x)
    (uj,) = pullback(u)
    return ((uj.flatten(1).norm(dim=1) - 1) ** 2).mean()


@torch.no_grad()
def _jacobian_norms(ae, x, generator=None):
    """Per image: ||J_D(z) u|| at z sampled as in L_iso, and ||u^T J_E(x)||, eval mode."""
    with eval_mode(ae), torch.enable_grad():
        z_data = ae.encode(x)
        u = unit_latents(len(x), ae.latent_dim, generator, x.dtype, x.device)
        z = gaussian_latents(z_data, generator)
        a = jvp(ae.decoder, (z,), (u,))[1].flatten(1).norm(dim=1)
        b = vjp(ae.encoder, x)[1](u)[0].flatten(1).norm(dim=1)
    return a.detach(), b.detach()


def latent_scale(ae, x, generator=None):
    """The factor c minimising L_iso + L_piso of the autoencoder with latent c z (encoder times c, decoder
    input divided by c): mean (a/c - 1)^2 + mean (c b - 1)^2 with a = ||J_D u||, b = ||u^T J_E||,
    by a grid on log c. A plain autoencoder's latent scale is arbitrary; an isometry fixes it."""
    a, b = (v.double() for v in _jacobian_norms(ae, x, generator))
    grid = torch.logspace(-3, 3, 2401, dtype=torch.float64)
    f = ((a[None] / grid[:, None] - 1) ** 2).mean(1) + ((grid[:, None] * b[None] - 1) ** 2).mean(1)
    return float(grid[f.argmin()])


@torch.no_grad()
def rescale_latent(ae, c):
    """Multiply the latent code by c in place without changing D(E(x)): the encoder's last linear layer
    times c, the decoder's first linear layer's weights divided by c."""
    enc, dec = ae.encoder[-1], ae.decoder[0]
    if not (isinstance(enc, nn.Linear) and isinstance(dec, nn.Linear)):
        raise ValueError("rescale_latent needs a linear last encoder layer and a linear first decoder layer")
    enc.weight.mul_(c)
    enc.bias.mul_(c)
    dec.weight.div_(c)
    return ae


def iae_terms(ae, x, generator=None):
    """The three terms (reconstruction, L_iso, L_piso) on the batch x, all differentiable in the weights,
    with BatchNorm in eval mode (see the module docstring)."""
    with eval_mode(ae):
        z_data = ae.encode(x)
        recon = ((ae.decoder(z_data) - x) ** 2).flatten(1).sum(1).mean()
        u = unit_latents(len(x), ae.latent_dim, generator, x.dtype, x.device)
        z = gaussian_latents(z_data, generator)
        l_iso = iso_loss(ae.decoder, z, u)
        l_piso = piso_loss(ae.encoder, x, u)
    return recon, l_iso, l_piso


def train_iae(ae, x, cfg, device, desc="I-AE", monitor=None):
    """Adam on recon + lam (L_iso + L_piso) over the images x: lib.learn.train.fit's loop with the I-AE's batch loss
    (every term in eval mode: there is no BatchNorm, see the module docstring).

    monitor: None, or images (test images) at whose encodings the isometry criterion (`isometric_share` of the
    singular values of J_D) is measured before training and after every epoch (no randomness: the batches do not
    change). Returns the model in eval mode and the history: the three terms at every step (batch), the epoch at
    which each step was taken, and "iso_share": the criterion after 0, 1, ... epochs with "sv_q05", "sv_q95": the 5% and
    95% quantiles of those singular values (empty without monitor)."""
    history = {"epoch": [], "recon": [], "iso": [], "piso": [], "iso_share": [], "sv_q05": [], "sv_q95": []}

    def measure(epoch=0, model=ae):
        if monitor is not None:
            sv = decoder_singular_values(model, model.encode(monitor.to(device)).detach())
            q = torch.quantile(sv.flatten().double().cpu(), torch.tensor([0.05, 0.95], dtype=torch.float64))
            history["iso_share"].append(isometric_share(sv))
            history["sv_q05"].append(float(q[0]))
            history["sv_q95"].append(float(q[1]))

    def batch_loss(model, xb, generator):
        terms = iae_terms(model, xb, generator)
        history["epoch"].append(_epoch_of(history, x, cfg))
        for name, t in zip(("recon", "iso", "piso"), terms):
            history[name].append(float(t.item()))
        return terms[0] + cfg.lam * (terms[1] + terms[2])

    ae.to(device)
    measure()
    torch.set_flush_denormal(True)  # Softplus(β = 100) of negative inputs underflows to denormals: steps 1.4-3x slower
    try:
        ae, _ = train.fit(ae, x, None, None, cfg, device, desc, on_epoch=measure, batch_loss=batch_loss)
    finally:
        torch.set_flush_denormal(False)
    return ae, history


def _epoch_of(history, x, cfg):
    """The (0-based) epoch of the next step: steps so far over the steps per epoch."""
    return len(history["epoch"]) // -(-len(x) // cfg.batch_size)


# What defines a trained I-AE (lib.infra.artifacts).
IAE = Artifact(
    "iae",
    4,
    (
        models,
        activations,
        IAEConfig,
        isometric_autoencoder,
        unit_latents,
        gaussian_latents,
        iso_loss,
        piso_loss,
        _jacobian_norms,
        latent_scale,
        rescale_latent,
        iae_terms,
        train_iae,
        _epoch_of,
        isometric_share,
        train.make_optimizer,
        train.fit,
    ),
)


@dataclass
class TrainedIAE:
    model: nn.Module
    meta: dict     # config, training data, history of the three terms, seconds
    cached: bool
    key: str

    def summary(self):
        return "loaded from the cache" if self.cached else f"trained in {self.meta['train_seconds']:.0f} s"


def get_iae(cfg, data, device="cpu", warm=None):
    """An I-AE trained with `cfg` on `data.train_x`, from the cache if there.

    warm: the plain autoencoder (lib.learn.train.Trained) to start from; its cache key must be cfg.warm_start."""
    if cfg.lam < 0:
        raise ValueError(f"lam must be >= 0, got {cfg.lam}")
    if cfg.warm_start and (warm is None or warm.key != cfg.warm_start):
        raise ValueError("cfg.warm_start names a plain autoencoder: pass it as warm=")
    device = torch.device(device)
    make = lambda: isometric_autoencoder(data.shape, cfg.latent_dim, cfg.width, cfg.softplus_beta)

    def build():
        torch.manual_seed(cfg.seed)
        model = make()
        t0 = time.time()
        scale = 1.0
        if cfg.warm_start:  # the plain model, its latent rescaled towards isometry (D(E(x)) unchanged)
            fold_batchnorm(warm.model, model)
            g = torch.Generator().manual_seed(cfg.seed)
            scale = latent_scale(model, data.train_x[torch.randperm(len(data.train_x), generator=g)[:256]], g)
            rescale_latent(model, scale)
        monitor = data.test_x[:cfg.monitor_images] if cfg.monitor_images > 0 else None
        model, history = train_iae(model, data.train_x, cfg, device, f"{cfg.dataset} I-AE lambda={cfg.lam:g}", monitor)
        meta = {
            "config": asdict(cfg),
            "data_source": data.describe(),
            "data_id": data.identity(),
            "n_train": len(data.train_x),
            "train_seconds": time.time() - t0,
            "history": history,
            "latent_scale": scale,
        }
        return {k: v.cpu() for k, v in model.state_dict().items()}, meta

    key = IAE.key({"iae": asdict(cfg), "data": data.identity()})
    entry, hit = cache.cached(IAE.kind, key, build)
    model = make()
    model.load_state_dict(entry["state_dict"])
    return TrainedIAE(model.to(device).eval(), entry["meta"], hit, key)


# ---------------------------------------------------------------- measures of isometry (eval mode)

@torch.no_grad()
def held_out_terms(ae, x, seed=0, batch_size=200):
    """Mean reconstruction error per image (summed over pixels), L_iso and L_piso on images x, eval mode."""
    g = torch.Generator().manual_seed(seed)
    sums = np.zeros(3)
    with eval_mode(ae):
        for i in progress(range(0, len(x), batch_size), desc="held-out terms", unit="batch", leave=False):
            xb = x[i:i + batch_size]
            with torch.enable_grad():
                terms = iae_terms(ae, xb, g)
            sums += np.array([t.item() for t in terms]) * len(xb)
    return dict(zip(("recon", "iso", "piso"), sums / len(x)))


def decoder_singular_values(ae, z, chunk=16):
    """Singular values of J_D(z) (n x k) at each row of z: (B, k), descending. All 1 for an isometry."""
    out = []
    with eval_mode(ae):
        for i in progress(range(0, len(z), chunk), desc="singular values of J_D", unit="chunk", leave=False):
            out.append(torch.linalg.svdvals(decoder_jacobian(ae.decoder, z[i:i + chunk].detach())).detach())
    return torch.cat(out)


@torch.no_grad()
def reencoding_error(ae, z):
    """||E(D(z)) - z|| / ||z - mean(z)||_rms per row: 0 when E inverts D on its image."""
    with eval_mode(ae):
        err = (ae.encode(ae.decoder(z)) - z).norm(dim=1)
    return err / (z - z.mean(0)).norm(dim=1).pow(2).mean().sqrt()


@torch.no_grad()
def projection_ratios(ae, x, Q, radius, generator=None):
    """||D(E(x + n)) - D(E(x))|| / ||n|| for a random n of norm `radius` orthogonal to the tangent space
    (columns of Q, (B, n, k)) and for one inside it: (normal, tangent), each (B,).

    An orthogonal projection onto the manifold gives about 0 for the normal and 1 for the tangent direction."""
    flat = x.flatten(1)
    g = torch.randn(flat.shape, generator=generator, dtype=x.dtype).to(x.device)
    along = torch.einsum("bnk,bn->bk", Q, g)
    tangent = torch.einsum("bnk,bk->bn", Q, along)
    out = []
    with eval_mode(ae):
        base = ae(x).flatten(1)
        for n in (g - tangent, tangent):
            n = radius * n / n.norm(dim=1, keepdim=True)
            out.append((ae((flat + n).view_as(x)).flatten(1) - base).norm(dim=1) / radius)
    return tuple(out)


def choose_lambda(sweep, plain_recon, tolerance):
    """The lambda of the sweep {lambda: held-out terms} with the smallest L_iso + L_piso among those whose
    reconstruction error is at most (1 + tolerance) x the plain autoencoder's; if none qualifies, the one
    with the smallest reconstruction error. Returns (lambda, reason in words). Robust accuracy plays no part."""
    ok = {lam: t for lam, t in sweep.items() if t["recon"] <= (1 + tolerance) * plain_recon}
    if ok:
        lam = min(ok, key=lambda v: ok[v]["iso"] + ok[v]["piso"])
        return lam, (
            f"lambda = {lam:g}: the most isometric (L_iso + L_piso = {ok[lam]['iso'] + ok[lam]['piso']:.3f} on "
            f"held-out images) of the {len(ok)} value(s) whose reconstruction error is within "
            f"{100 * tolerance:.0f}% of the plain autoencoder's"
        )
    lam = min(sweep, key=lambda v: sweep[v]["recon"])
    return lam, (f"lambda = {lam:g}: no value kept the reconstruction error within {100 * tolerance:.0f}% of the "
                 f"plain autoencoder's, so the one that reconstructs best")
