"""Benchmark: the tangent projection where a basis does not fit, at ImageNet resolution (n = 150,528).

Two cases, each in its own process (so that its peak resident memory, ru_maxrss, is its own):
  --case narrow   lib.learn.models.VGGAutoencoder with every width / 8: latent 64 x 7 x 7, k = 3,136 (the paper
                  reports 3,584 for its ImageNet autoencoder). Small enough to check against the exact answer:
                  J formed (3,136 jvps, float64) and QR-factorised, P_on v = Q Q^T v. Measured: the Gram route
                  (lib.geometry.subspaces.GramTangentSubspace: G = J^T J from k jvp + vjp pairs, Cholesky), its error
                  against the exact projection, and conjugate gradients (bench/cg_route.py's
                  project_onto_matrix_free, cold, float32, as MatrixFreeTangentSubspace runs it) with the
                  error it leaves.
  --case full     the full-width autoencoder, k = 25,088: the Gram route's parts timed, the k-column loop
                  extrapolated from `--columns` of its columns (12+ hours on this CPU), the Cholesky factor of a
                  25,088^2 float64 matrix computed in place (a synthetic SPD one: the time does not depend on the
                  entries) and projections with the real decoder through that factor.
--weights trained (default): the autoencoder trained for --train-seconds on smooth synthetic 224 x 224 images
(low-pass noise: Gaussian noise at 7 x 7, bicubically upsampled, squashed into [0, 1]), cached at
/tmp/dimpled_vgg_ae_<case>.pt; a trained decoder's J is ill-conditioned, which is what defeats CG. random: as
initialised. The vectors projected are what on-manifold PGD projects: v_t = the gradient of a small random
CNN's margin at x_t, x_{t+1} = x_t + alpha P(v_t) / ||P(v_t)||, the tangent space fixed at x_0.
Run:  .venv/bin/python bench/bench_projection.py --case narrow [--weights random]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import jvp, vjp, vmap

from cg_route import project_onto_matrix_free  # bench/: this folder is on sys.path when a benchmark runs
from lib.geometry.manifold import eval_mode, gram_solver, project_onto_gram, unit_vectors
from lib.learn.models import VGG16_BLOCKS, VGGAutoencoder
from lib.geometry.subspaces import GramTangentSubspace
from rows import row

REPO = Path(__file__).resolve().parents[1]
N_PIXELS = 3 * 224 * 224
NARROW_BLOCKS = tuple(tuple(w // 8 for w in block) for block in VGG16_BLOCKS)


def peak_rss_gb():
    """Peak resident memory of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def smooth_images(b, generator):
    """Low-pass synthetic images in [0, 1]: 7 x 7 Gaussian noise, bicubically upsampled to 224 x 224."""
    coarse = torch.randn(b, 3, 7, 7, generator=generator)
    return torch.sigmoid(2 * F.interpolate(coarse, size=224, mode="bicubic", align_corners=False))


def train_briefly(ae, seconds, batch=4, seed=0):
    """Train ae on smooth_images for about `seconds` of wall time (Adam, lr 1e-3, MSE); returns losses."""
    generator, opt, losses = torch.Generator().manual_seed(seed), torch.optim.Adam(ae.parameters(), 1e-3), []
    ae.train()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x = smooth_images(batch, generator)
        loss = F.mse_loss(ae(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return ae.eval(), losses


def autoencoder(case, weights, train_seconds):
    torch.manual_seed(0)
    ae = VGGAutoencoder(blocks=NARROW_BLOCKS if case == "narrow" else VGG16_BLOCKS).eval()
    info = {}
    if weights == "trained":
        checkpoint = f"/tmp/dimpled_vgg_ae_{case}.pt"
        if os.path.exists(checkpoint):
            ae.load_state_dict(torch.load(checkpoint, weights_only=True))
        else:
            ae, losses = train_briefly(ae, train_seconds)
            torch.save(ae.state_dict(), checkpoint)
            info = {"trained_steps": len(losses), "loss_first": losses[0], "loss_last": losses[-1]}
    return ae, info


def small_cnn():
    """A random ImageNet-shape classifier, cheap: only its input gradients matter here."""
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 8, stride=4), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 4, 2),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(512, 10)).eval()


def margin_gradient(model, x, label):
    x = x.detach().requires_grad_(True)
    logits = model(x)
    other = logits.masked_fill(F.one_hot(label, 10).bool(), float("-inf")).amax(1)
    return torch.autograd.grad((other - logits.gather(1, label[:, None])[:, 0]).sum(), x)[0]


def pgd_like_vectors(steps, alpha=1.0):
    """The vectors a PGD run projects, made with `project` as it goes: a generator of (t, x_t, v_t)."""
    x = smooth_images(1, torch.Generator().manual_seed(2))
    model = small_cnn()
    label = model(x).argmax(1)
    for t in range(steps):
        v = margin_gradient(model, x, label)
        projected = yield t, x, v
        x = (x + alpha * projected / projected.flatten(1).norm(dim=1).clamp_min(1e-30)).clamp(0, 1)


def dense_jacobian(decode, z, chunk=16):
    """J (n, k) of one image, chunk columns at a time (one jvp each, vmapped)."""
    k = z.shape[1]
    J = torch.empty(N_PIXELS, k, dtype=z.dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        for start in range(0, k, chunk):
            units = unit_vectors(start, min(start + chunk, k), k, z)[:, None, :]
            J[:, start:start + chunk] = vmap(lambda u: jvp(decode, (z,), (u,))[1])(units).flatten(1).T
    return J


def tangent_share(Q, off):
    """||P_on off|| / ||off|| with the exact basis Q: how much of an "off-manifold" vector is in fact tangent."""
    off = off.flatten()
    return float((Q @ (Q.T @ off)).norm() / off.norm())


def relative_error(got, exact):
    return float((got - exact).norm() / exact.norm())


def narrow(weights, train_seconds, steps, cg_iterations):
    """Gram route vs exact (QR of J, float64) vs conjugate gradients, k = 3,136."""
    ae, out = autoencoder("narrow", weights, train_seconds)
    vectors = pgd_like_vectors(steps)
    _, x, v = next(vectors)
    t0 = time.perf_counter()
    sub = GramTangentSubspace(ae, x)
    out["gram_setup_s"] = time.perf_counter() - t0  # k jvp + vjp pairs and the Cholesky factor
    t0 = time.perf_counter()
    with eval_mode(sub.ae), torch.no_grad():
        Q, R = torch.linalg.qr(dense_jacobian(sub.decode, sub.z))
    out["dense_setup_s"] = time.perf_counter() - t0  # the peer: J by k jvps, then QR
    sigma = torch.linalg.svdvals(R)
    out.update(k=sub.k, kappa=float(sigma[0] / sigma[-1]),
               sigma_quantiles=[float(q) for q in torch.quantile(sigma / sigma[0], torch.tensor(
                   [0.0, 0.01, 0.5, 0.99, 1.0], dtype=sigma.dtype))])
    with eval_mode(ae), torch.no_grad():  # conjugate gradients as MatrixFreeTangentSubspace runs them: float32
        z32, decode32 = ae.encode(x), ae.decoder_at(x)
    solves = []
    t = 0
    while True:
        exact = (Q @ (Q.T @ v.double().flatten())).view_as(v)
        t0 = time.perf_counter()
        projected = sub.on(v)
        solve = {"step": t, "gram_s": round(time.perf_counter() - t0, 3), "gram_error": relative_error(
            projected.double(), exact), "gram_residual": float(sub.last_info["residual"][0]),
            "gram_off_leak": tangent_share(Q, v.double() - projected.double())}
        if t == 0:
            for iterations in cg_iterations:
                t0 = time.perf_counter()
                cg, info = project_onto_matrix_free(decode32, z32, v, tol=1e-4, max_iter=iterations)
                solve[f"cg{iterations}"] = {"s": round(time.perf_counter() - t0, 2),
                                            "error": relative_error(cg.double(), exact),
                                            "off_leak": tangent_share(Q, v.double() - cg.double()),
                                            "normal_residual": float(info["residual"][0])}
        solves.append(solve)
        print(json.dumps(solve), flush=True)
        try:
            t, x, v = vectors.send(projected)
        except StopIteration:
            break
    out.update(solves=solves, peak_rss_gb=round(peak_rss_gb(), 2))
    return out


def full(weights, train_seconds, columns, projections):
    """The Gram route at k = 25,088, in parts: columns of G timed and extrapolated, the factor and projections
    run for real (the factor from a synthetic SPD matrix of the right size)."""
    ae, out = autoencoder("full", weights, train_seconds)
    ae = ae.double()
    vectors = pgd_like_vectors(projections)
    _, x, v = next(vectors)
    with eval_mode(ae), torch.no_grad():
        z, decode = ae.encode(x.double()), ae.decoder_at(x.double())
        k = z.shape[1]
        _, J_T = vjp(decode, z)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*batching rule.*")
            column = vmap(lambda u: J_T(jvp(decode, (z,), (u,))[1])[0])
            column(unit_vectors(0, 1, k, z)[:, None, :])  # warm-up
            t0 = time.perf_counter()
            column(unit_vectors(1, 1 + columns, k, z)[:, None, :])
        per_column = (time.perf_counter() - t0) / columns
    out.update(k=k, gram_column_s=per_column, gram_build_s_estimated=per_column * k)
    G = torch.eye(k, dtype=torch.float64)[None]
    G[0].diagonal().add_(torch.rand(k, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    t0 = time.perf_counter()
    solve = gram_solver(G)
    out["cholesky_s"] = time.perf_counter() - t0
    times = []
    for t in range(projections):
        t0 = time.perf_counter()
        projected, _ = project_onto_gram(decode, z, v.double(), solve)
        times.append(round(time.perf_counter() - t0, 2))
        try:
            _, x, v = vectors.send(projected.float())
        except StopIteration:
            break
    with torch.no_grad():
        jvp(decode, (z,), (torch.randn_like(z),))
        t0 = time.perf_counter()
        jvp(decode, (z,), (torch.randn_like(z),))
        per_jvp = time.perf_counter() - t0
    qr_flops = 2 * N_PIXELS * k ** 2 - 2 * k ** 3 / 3  # Householder QR of an n x k matrix
    out.update(projection_s=times, gram_memory_gb=k * k * 8 / 1e9, peak_rss_gb=round(peak_rss_gb(), 2),
               dense_jvp_s=per_jvp, dense_J_s_estimated=per_jvp * k, dense_qr_gflop=qr_flops / 1e9,
               dense_memory_gb=2 * N_PIXELS * k * 4 / 1e9)  # J and Q in float32
    return out


def run_case(case, weights="trained"):
    """One case in a process of its own (its peak memory its own); the last stdout line is its JSON."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    lines = subprocess.run([sys.executable, __file__, "--case", case, "--weights", weights], env=env, check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()
    out = json.loads(lines[-1])
    reports = Path(os.environ.get("DIMPLED_REPORTS", REPO / "reports"))
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"bench_projection_{case}.json").write_text(json.dumps(out, indent=1))  # every step's figures
    return out


def rows(devices):
    """bench/table.py's rows (CPU: the Gram route's device is the CPU here; the case scripts take --device)."""
    n = run_case("narrow")
    first = n["solves"][0]
    cg = "; ".join(f"CG {key[2:]} iterations: error {val['error']:.1e} while its normal-equation residual reads "
                   f"{val['normal_residual']:.1e}" for key, val in first.items() if key.startswith("cg"))
    worst = max(s["gram_error"] for s in n["solves"])
    narrow_row = row(f"tangent projection, n 150,528, k {n['k']:,} (VGG AE, widths / 8), briefly trained, 1 image",
                     "cpu", n["gram_setup_s"], n["dense_setup_s"], "Gram route: G = J^T J (k jvp+vjp, float64) + "
                     "Cholesky", "dense: J by k jvps + QR (float64)",
                     note=f"kappa(J) {n['kappa']:.1e}; Gram projection error vs exact <= {worst:.1e} over "
                          f"{len(n['solves'])} PGD-like steps ({first['gram_s']} s each); {cg}; peak RSS "
                          f"{n['peak_rss_gb']} GB (the dense check's J and Q included)",
                     kappa=n["kappa"], gram_error_max=worst, solves=n["solves"], peak_rss_gb=n["peak_rss_gb"])
    f = run_case("full", "random")  # the timings do not depend on the weights
    ours = f["gram_build_s_estimated"] + f["cholesky_s"]
    full_row = row("tangent projection at ImageNet size (n 150,528, k 25,088), 1 image", "cpu", ours,
                   f["dense_J_s_estimated"], "Gram route: G by k jvp+vjp (est. from "
                   f"{f['gram_column_s']:.2f} s/column) + Cholesky ({f['cholesky_s']:.0f} s, measured)",
                   "dense: J by k jvps (+ QR), estimated", estimated=True,
                   note=f"G {f['gram_memory_gb']:.1f} GB float64, factorised in place; each projection "
                        f"{f['projection_s']} s (vjp, 2 triangular solves, jvp, residual vjp; measured); peak RSS "
                        f"{f['peak_rss_gb']} GB; dense needs {f['dense_memory_gb']:.0f} GB (J and Q) + QR "
                        f"{f['dense_qr_gflop']:.0f} GFLOP (not included)", **{k: f[k] for k in (
                            "gram_column_s", "cholesky_s", "projection_s", "peak_rss_gb")})
    return [narrow_row, full_row]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=["narrow", "full"], default="narrow")
    ap.add_argument("--weights", choices=["random", "trained"], default="trained")
    ap.add_argument("--train-seconds", type=float, default=180)
    ap.add_argument("--steps", type=int, default=3, help="PGD-like steps projected (narrow)")
    ap.add_argument("--cg-iterations", default="100,1000", help="CG budgets compared (narrow), comma-separated")
    ap.add_argument("--columns", type=int, default=2, help="columns of G timed (full)")
    ap.add_argument("--projections", type=int, default=2, help="projections timed (full)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    if args.case == "narrow":
        out = narrow(args.weights, args.train_seconds, args.steps, [int(i) for i in args.cg_iterations.split(",")])
    else:
        out = full(args.weights, args.train_seconds, args.columns, args.projections)
    out.update(case=args.case, weights=args.weights, threads=torch.get_num_threads())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
