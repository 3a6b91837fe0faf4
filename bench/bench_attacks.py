"""Benchmark: our unconstrained lib.boundary.attacks.pgd_l2 against torchattacks' PGDL2 (the oracle).

Same model (a random MLP 784-256-256-10), same random [0, 1] images of MNIST shape labelled with
the model's own predictions, same eps / alpha / steps, CPU. PGDL2 always runs all its steps and
has no refinement, while pgd_l2 is greedy, so three comparisons:
  1. fixed budget: eps so small that no image crosses, so both take every step on the whole
     batch; this compares the cost per step, and the perturbations must agree (same CE step).
  2. greedy: the same attack as used in the notebooks (margin loss, refinement) against PGDL2's
     full budget; images/s of each way of finding an adversarial within the budget.
  3. norms: pgd_l2 with loss="ce" and refine_steps=0 stops each image at its crossing step t;
     PGDL2 run for exactly t steps (on the images that crossed at t) must land on the same point,
     so the norms must agree where both succeed. The refined norm is reported beside them.
Run:  .venv/bin/python bench/bench_attacks.py   (needs `pip install --no-deps torchattacks`)
"""
import torch

from lib.boundary.attacks import l2_norm, pgd_l2
from rows import row  # bench/: this folder is on sys.path when a benchmark runs
from timing import race as timing_race, repeats

N, SEED = 256, 0
REPEATS = repeats(7)
EPS, ALPHA, STEPS = 1.0, 0.01, 50  # the public reproduction's MNIST standard PGD, in [0, 1] scale
EPS_TINY = 1e-4                     # row 1: no image reaches the boundary within this ball
THREADS = 1  # one intra-op thread: stable timings on a shared CPU (2 threads fight other jobs)


def load_torchattacks():
    try:
        import torchattacks
    except ImportError:
        raise SystemExit("bench_attacks needs torchattacks as an oracle; install it beside the "
                         "project without its pinned dependencies: pip install --no-deps torchattacks")
    return torchattacks


def setup():
    torch.manual_seed(SEED)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)).eval()
    x = torch.rand(N, 1, 28, 28)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def race(ours, theirs):
    """Median wall time of each over REPEATS alternating calls (the machine may be shared), and their results."""
    (r, out), (t_ours, t_theirs) = timing_race([ours, theirs], REPEATS)
    return t_ours, t_theirs, r, out


def rows(devices):
    """bench/table.py's row: the fixed-budget comparison (every step on the whole batch), on each device."""
    torchattacks = load_torchattacks()
    out = []
    for device in devices:
        model, x, y = (t.to(device) for t in setup())
        t_ours, t_ta, r, adv_ta = race(
            lambda: pgd_l2(model, x, y, eps=EPS_TINY, alpha=ALPHA, steps=STEPS, loss="ce"),
            lambda: torchattacks.PGDL2(model, eps=EPS_TINY, alpha=ALPHA, steps=STEPS, random_start=False)(x, y))
        f = ~r.success
        out.append(row(f"unconstrained L2 PGD, fixed budget, {N} images x {STEPS} steps", device,
                       t_ours, t_ta, "lib.boundary.attacks.pgd_l2", "torchattacks PGDL2",
                       f"{N / t_ours:.0f} vs {N / t_ta:.0f} images/s; median of {REPEATS}; "
                       f"max |adv - adv_PGDL2| {(r.adv[f] - adv_ta[f]).abs().max():.1e}"))
    return out


def main():
    torchattacks = load_torchattacks()
    torch.set_num_threads(THREADS)
    model, x, y = setup()
    rows = []

    def ta(eps, steps, images=x, labels=y):
        return torchattacks.PGDL2(model, eps=eps, alpha=ALPHA, steps=steps, random_start=False)(images, labels)

    # 1. fixed budget: every step on the whole batch, for both
    t_ours, t_ta, r, adv_ta = race(lambda: pgd_l2(model, x, y, eps=EPS_TINY, alpha=ALPHA, steps=STEPS, loss="ce"),
                                   lambda: ta(EPS_TINY, STEPS))
    f = ~r.success
    rows.append((f"fixed budget (eps={EPS_TINY:g}, steps={STEPS})", t_ours, t_ta,
                 f"{int(r.success.sum())} images crossed; elsewhere max |adv - adv_PGDL2| = "
                 f"{(r.adv[f] - adv_ta[f]).abs().max():.1e}"))

    # 2. greedy + refinement (margin loss) against PGDL2's full budget
    t_ours, t_ta, r, adv_ta = race(lambda: pgd_l2(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS),
                                   lambda: ta(EPS, STEPS))
    with torch.no_grad():
        ta_success = model(adv_ta).argmax(1) != y
    rows.append((f"greedy (eps={EPS:g}, alpha={ALPHA:g}, steps={STEPS})", t_ours, t_ta,
                 f"success {r.success.float().mean():.0%} vs {ta_success.float().mean():.0%}; "
                 f"mean iterations {r.iterations.float().mean():.1f} of {STEPS}"))

    print(f"{'comparison':32s} {'pgd_l2 img/s':>13s} {'PGDL2 img/s':>12s} {'ratio':>6s}  notes")
    for name, a, b, note in rows:
        print(f"{name:32s} {N / a:13.0f} {N / b:12.0f} {b / a:6.2f}  {note}")

    # 3. norms where both succeed: PGDL2 for exactly as many steps as pgd_l2 took
    raw = pgd_l2(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS, loss="ce", refine_steps=0)
    refined = pgd_l2(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS, loss="ce")
    norm_ta = torch.full((N,), float("nan"))
    both = torch.zeros(N, dtype=torch.bool)
    for t in raw.iterations[raw.success & (raw.iterations > 0)].unique().tolist():
        i = (raw.success & (raw.iterations == t)).nonzero()[:, 0]
        adv = ta(EPS, t, x[i], y[i])
        norm_ta[i] = l2_norm(adv - x[i])
        with torch.no_grad():
            both[i] = model(adv).argmax(1) != y[i]
    rel = ((raw.norm - norm_ta).abs() / norm_ta)[both]
    print(f"\nnorms where both succeed ({int(both.sum())} of {N} images, CE loss, no refinement): "
          f"max relative difference {rel.max():.1e}, median norm {raw.norm[both].median():.4f} "
          f"(pgd_l2) vs {norm_ta[both].median():.4f} (PGDL2)")
    print(f"refinement: median refined / unrefined norm {(refined.norm / raw.norm)[both].median():.4f}; "
          f"median last-step overshoot removed {(raw.norm - refined.norm)[both].median():.4f} (alpha = {ALPHA:g})")


if __name__ == "__main__":
    main()
