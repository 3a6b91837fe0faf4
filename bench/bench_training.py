"""Benchmark: how close the report's training steps come to this machine's dense-matmul rate, and what the memory
format and the batch size would give per image.

Per trained model kind, the step exactly as the report trains it (lib.learn.train.fit's forward, loss, zero_grad,
backward, optimizer step; the I-AE's lib.learn.iae.iae_terms), on random images of the data set's shape (the timing does
not depend on the values), at the quick profile's sizes:
  MLP classifier     784-256-256-10 (MNIST and Fashion-MNIST train the same net), SGD, batch 200
  conv autoencoder   lib.learn.models.ConvAutoencoder, 28x28, width 16, k = 16, Adam, batch 144 (MNIST, Fashion-MNIST)
  I-AE               the same autoencoder without BatchNorm, Softplus(100), reconstruction + L_iso + L_piso, batch 144
FLOPs per step: torch.utils.flop_counter.FlopCounterMode over one step (matmuls and convolutions, forward and
backward; the optimizer's element-wise work is not counted). The machine's rate: a 2048 x 2048 fp32 matmul
(2 * 2048^3 FLOP) with the same threads, its calls alternating with the step's (median of each), so that a shared
machine's changing load falls on both. Each training row's ratio is the achieved GFLOP/s over that rate (the share
of the machine's dense rate the step reaches: 1.00 would be matmul speed). Then per image, against the step as
trained (calls alternating likewise): `channels_last` (model and images) for the convolutional nets, and a batch 4x
larger for each kind. These are measurements only: the report's models train as they always have (a
changed batch changes the model).
Run:  .venv/bin/python bench/bench_training.py [--threads N]
"""
import argparse
import statistics

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lib.learn import iae, models
from rows import row  # bench/: this folder is on sys.path when a benchmark runs
from timing import race, repeats

REPEATS = repeats(3)  # alternating rounds after one warm-up call
MATMUL_N = 2048


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def synced(fn, device):
    """fn, then wait for the device: what a wall clock should time."""
    return lambda: (fn(), _sync(device))


def matmul(device):
    """A 2048 x 2048 fp32 matmul on `device` (2 * 2048^3 FLOP per call)."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(MATMUL_N, MATMUL_N, generator=g).to(device) for _ in range(2))
    return lambda: a @ b


def alternating(fns, device, n):
    """Median wall seconds of each of `fns` over n rounds of alternating calls, after one warm-up call of each: a
    shared machine's load falls on all alike, so their ratio is steadier than either time."""
    fns = [synced(fn, device) for fn in fns]
    for fn in fns:
        fn()
    return race(fns, n)[1]


class _NoModuleTracking:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks break torch.func's vjp inside autograd
    (the I-AE's L_piso): every FLOP is counted under "Global", none per module."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def flops(step):
    """FLOPs of one call of `step` (torch.utils.flop_counter, without its per-module breakdown)."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracking()
    with counter:
        step()
    return counter.get_total_flops()


def classifier_step(batch, device, channels_last=False):
    model = models.mnist_mlp("mnist").to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(batch, 1, 28, 28, generator=g).to(device), torch.randint(0, 10, (batch,), generator=g).to(device)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _images(batch, device, channels_last):
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def autoencoder_step(batch, device, channels_last=False):
    model = models.ConvAutoencoder(1, 28, latent_dim=16, width=16).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = _images(batch, device, channels_last)

    def step():
        loss = F.mse_loss(model(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def iae_step(batch, device, channels_last=False):
    model = iae.isometric_autoencoder((1, 28, 28), 16, 16, 100.0).to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, g = _images(batch, device, channels_last), torch.Generator(device=device).manual_seed(0)

    def step():
        recon, l_iso, l_piso = iae.iae_terms(model, x, g)
        loss = recon + 1.0 * (l_iso + l_piso)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


KINDS = [  # (name, step factory, batch as trained, convolutional)
    ("MLP classifier (MNIST, Fashion-MNIST)", classifier_step, 200, False),
    ("conv autoencoder 28x28, width 16", autoencoder_step, 144, True),
    ("I-AE step 28x28, width 16", iae_step, 144, True),
]


def rows(devices):
    out = []
    for device in devices:
        mm, rates, kinds = matmul(device), [], []
        for name, make, batch, conv in KINDS:
            step = make(batch, device)
            f = flops(step)
            t_mm, t = alternating([mm, step], device, REPEATS)  # the matmul rate measured beside each step
            rate, achieved = 2 * MATMUL_N ** 3 / t_mm / 1e9, f / t / 1e9
            rates.append(rate)
            kinds.append(row(f"train step: {name}, batch {batch}", device, t, f / (rate * 1e9),
                             f"{f / 1e9:.2f} GFLOP/step, {achieved:.1f} GFLOP/s",
                             f"the same FLOPs at the matmul rate measured beside it ({rate:.0f} GFLOP/s)",
                             f"ratio = share of the matmul rate: {achieved / rate:.0%}", flops=f, gflops_per_s=achieved,
                             matmul_gflops_per_s=rate, share_of_matmul=achieved / rate))
            variants = ([("channels_last", make(batch, device, channels_last=True), batch)] if conv else []) + \
                       [(f"batch {4 * batch}", make(4 * batch, device), 4 * batch)]
            for label, other, b in variants:
                t_base, t_other = alternating([step, other], device, max(2, REPEATS - 1))
                kinds.append(row(f"  per image: {name}, {label}", device, t_other / b, t_base / batch, label,
                                 f"batch {batch}, contiguous (as trained)",
                                 "ratio > 1: faster per image than as trained" + (
                                     " (not adopted: a changed batch changes the model)" if "batch" in label else "")))
        rate = statistics.median(rates)
        out.append(row(f"dense rate: {MATMUL_N}x{MATMUL_N} fp32 matmul", device, 2 * MATMUL_N ** 3 / rate / 1e9, None,
                       f"{rate:.1f} GFLOP/s", "-", "median of the rates measured beside each training step below",
                       gflops_per_s=rate))
        out += kinds
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for r in rows(["cpu"]):
        print(f"{r['task']:60s} {r['ours_s']:.4g} s  {r['ours']}  (ratio {r['ratio'] or float('nan'):.2f}; {r['note']})")


if __name__ == "__main__":
    main()
