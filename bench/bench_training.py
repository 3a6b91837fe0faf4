"""Benchmark: how close the report's training steps come to this machine's dense-matmul rate, and what the memory
format, the fused optimizer and the batch size give per image.

Per trained model kind, the step exactly as lib.learn.train.fit takes it (forward, loss, zero_grad, backward,
optimizer step; the optimizer of lib.learn.train.make_optimizer; a convolutional net in channels_last memory format
on a CPU; the I-AE's loss lib.learn.iae.iae_terms with denormals flushed, as lib.learn.iae.train_iae trains), on
random images of the data set's shape (the timing does not depend on the values), at the quick profile's sizes:
  MLP classifier     784-256-256-10 (MNIST and Fashion-MNIST train the same net), SGD, batch 200
  conv autoencoder   lib.learn.models.ConvAutoencoder, 28x28, width 16, k = 16, Adam (fused), batch 144
  I-AE               the same autoencoder without BatchNorm, Softplus(100), reconstruction + L_iso + L_piso, batch 144
FLOPs per step: torch.utils.flop_counter.FlopCounterMode over one step (matmuls and convolutions, forward and
backward; the optimizer's element-wise work is not counted). The machine's rate: a 2048 x 2048 fp32 matmul
(2 * 2048^3 FLOP) with the same threads. Each round times one matmul, then STEPS_IN_A_ROW training steps in a row
(their mean), as training takes them: a step timed alone right after the matmul (48 MB of operands) starts from cold
caches, which training never does (measured here: the MLP step 5.4 ms after a matmul, 4.1 ms in a row). Rounds
alternate so that a shared machine's changing load falls on both; each row is the median over rounds. Each training
row's ratio is the achieved GFLOP/s over the matmul rate (1.00 would be matmul speed). Then per image, against the
step as trained (rounds alternating likewise): the step as the report trained it before channels_last and the fused
Adam (contiguous, for-each Adam) for the convolutional nets, and a batch 4x larger for each kind (a measurement
only: a changed batch changes the model).
Run:  .venv/bin/python bench/bench_training.py [--threads N]
"""
import argparse
import statistics

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lib.learn import iae, models, train
from rows import row  # bench/: this folder is on sys.path when a benchmark runs
from timing import race, repeats

REPEATS = repeats(3)  # alternating rounds after one warm-up call
STEPS_IN_A_ROW = 3    # training steps timed together in each round (their mean)
MATMUL_N = 2048


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def matmul(device):
    """A 2048 x 2048 fp32 matmul on `device` (2 * 2048^3 FLOP per call)."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(MATMUL_N, MATMUL_N, generator=g).to(device) for _ in range(2))
    return lambda: a @ b


def in_a_row(fn, device, n):
    """n calls of fn in a row, then wait for the device: timed, it gives n x one call's time."""
    def calls():
        for _ in range(n):
            fn()
        _sync(device)
    return calls


def alternating(fns, device, n, per_round=(1,)):
    """Median wall seconds of ONE call of each of `fns` over n rounds; in each round fns[i] is called per_round[i]
    times in a row (the mean of those), rounds alternating after one warm-up round, so that a shared machine's load
    falls on all alike."""
    per_round = list(per_round) + [per_round[-1]] * (len(fns) - len(per_round))
    calls = [in_a_row(fn, device, k) for fn, k in zip(fns, per_round)]
    for c in calls:
        c()
    return [t / k for t, k in zip(race(calls, n)[1], per_round)]


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


def training_step(model, cfg, x, loss_of, device, before=False):
    """One optimizer step of `model` on the batch x as lib.learn.train.fit takes it: the layout fit gives a
    convolutional net on `device` and make_optimizer's optimizer; before=True: contiguous tensors and Adam without
    `fused` (the report's step before this benchmark's changes). loss_of(model, x) -> the loss."""
    layout = torch.contiguous_format if before else train.memory_format(model, device)
    model = model.to(device, memory_format=layout)
    x = x.to(device).contiguous(memory_format=layout)
    if before and cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt, _ = train.make_optimizer(model, cfg)

    def step():
        loss = loss_of(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _images(batch):
    return torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def classifier_step(batch, device, before=False):
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(1)).to(device)
    return training_step(models.mnist_mlp("mnist").train(), train.classifier_config("mnist"), _images(batch),
                         lambda m, x: F.cross_entropy(m(x), y), device, before)


def autoencoder_step(batch, device, before=False):
    cfg = train.autoencoder_config("mnist", latent_dim=16, width=16)
    return training_step(models.ConvAutoencoder(1, 28, latent_dim=16, width=16).train(), cfg, _images(batch),
                         lambda m, x: F.mse_loss(m(x), x), device, before)


def iae_step(batch, device, before=False):
    cfg = iae.IAEConfig("mnist", 16, 16, 1.0, 1)
    g = torch.Generator(device=device).manual_seed(0)

    def loss_of(m, x):
        recon, l_iso, l_piso = iae.iae_terms(m, x, g)
        return recon + cfg.lam * (l_iso + l_piso)
    return training_step(iae.isometric_autoencoder((1, 28, 28), 16, 16, 100.0).eval(), cfg, _images(batch), loss_of,
                         device, before)


KINDS = [  # (name, step factory, batch as trained, convolutional, denormals flushed as trained)
    ("MLP classifier (MNIST, Fashion-MNIST)", classifier_step, 200, False, False),
    ("conv autoencoder 28x28, width 16", autoencoder_step, 144, True, False),
    ("I-AE step 28x28, width 16", iae_step, 144, True, True),
]


def rows(devices):
    out = []
    for device in devices:
        mm, rates, kinds = matmul(device), [], []
        for name, make, batch, conv, flush in KINDS:
            torch.set_flush_denormal(flush)
            try:
                rate = _kind_rows(kinds, mm, name, make, batch, conv, device)
            finally:
                torch.set_flush_denormal(False)
            rates.append(rate)
        rate = statistics.median(rates)
        out.append(row(f"dense rate: {MATMUL_N}x{MATMUL_N} fp32 matmul", device, 2 * MATMUL_N ** 3 / rate / 1e9, None,
                       f"{rate:.1f} GFLOP/s", "-", "median of the rates measured beside each training step below",
                       gflops_per_s=rate))
        out += kinds
    return out


def _kind_rows(kinds, mm, name, make, batch, conv, device):
    """The rows of one model kind (appended to `kinds`): its step's share of the matmul rate measured beside it, then
    per image against the step as it was before (conv nets) and against a 4x batch. Returns that matmul rate."""
    step = make(batch, device)
    f = flops(step)
    t_mm, t = alternating([mm, step], device, REPEATS, per_round=(1, STEPS_IN_A_ROW))
    rate, achieved = 2 * MATMUL_N ** 3 / t_mm / 1e9, f / t / 1e9
    kinds.append(row(f"train step: {name}, batch {batch}", device, t, f / (rate * 1e9),
                     f"{f / 1e9:.2f} GFLOP/step, {achieved:.1f} GFLOP/s",
                     f"the same FLOPs at the matmul rate measured beside it ({rate:.0f} GFLOP/s)",
                     f"ratio = share of the matmul rate: {achieved / rate:.0%}", flops=f, gflops_per_s=achieved,
                     matmul_gflops_per_s=rate, share_of_matmul=achieved / rate))
    variants = ([("before: contiguous, Adam not fused", make(batch, device, before=True), batch)] if conv else []) + \
               [(f"batch {4 * batch}", make(4 * batch, device), 4 * batch)]
    for label, other, b in variants:
        t_base, t_other = alternating([step, other], device, REPEATS + 2, per_round=(STEPS_IN_A_ROW,))
        before = label.startswith("before")
        kinds.append(
            row(
                f"  per image: {name}, {label}",
                device,
                t_base / batch if before else t_other / b,
                t_other / b if before else t_base / batch,
                "as trained" if before else label,
                label if before else f"batch {batch} (as trained)",
                "ratio = speed-up of channels_last and the fused Adam"
                if before
                else "ratio > 1: faster per image than as trained (not adopted: a changed batch changes the model)",
            )
        )
    return rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for r in rows(["cpu"]):
        print(
            f"{r['task']:60s} {r['ours_s']:.4g} s  {r['ours']}  (ratio {r['ratio'] or float('nan'):.2f}; {r['note']})"
        )


if __name__ == "__main__":
    main()
