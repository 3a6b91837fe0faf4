"""Benchmark: the matrix-free tangent projection at ImageNet size, cold and warm-started along PGD.

lib.models.VGGAutoencoder (n = 150,528, k = 25,088), batch 1, CPU. One process per configuration, so that
the peak resident memory (resource.getrusage ru_maxrss, the whole process, model included) is its own:
  --method cgls     CGLS from a = 0 (lib.manifold.project_onto_matrix_free, no options: the solver as it was)
  --method jacobi   CGLS with the Jacobi column scaling of lib.manifold.column_scale (Hutchinson probes)
  --warm-steps T    then T more PGD-like steps, each warm-started from the previous step's solution
The PGD-like vectors are what on-manifold PGD projects: v_t = the gradient of a small random CNN's margin at
x_t, x_{t+1} = x_t + alpha P(v_t) / ||P(v_t)||, the tangent space fixed at x_0 (as in lib.attacks.pgd_l2).
--weights random: the autoencoder as initialised; trained: trained for --train-seconds on smooth synthetic
224 x 224 images (low-pass noise: Gaussian noise at 7 x 7, bicubically upsampled, squashed into [0, 1]),
cached at --checkpoint; its J is better conditioned. The dense route (J by k jvps, then QR) is estimated
from the time of a few jvps: J alone is n k floats (15 GB), too big to form here.
Run:  .venv/bin/python bench/bench_projection.py --method jacobi --warm-steps 4 [--weights trained]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import jvp

from lib.manifold import column_scale, eval_mode, project_onto_matrix_free
from lib.models import VGGAutoencoder
from rows import row  # bench/: this folder is on sys.path when a benchmark runs

REPO = Path(__file__).resolve().parents[1]
METHOD = "cgls"  # the method `make bench` times (see the report for the comparison behind the choice)

N_PIXELS, K = 3 * 224 * 224, 512 * 7 * 7


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
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    return ae.eval(), losses


def autoencoder(weights, checkpoint, train_seconds):
    torch.manual_seed(0)
    ae = VGGAutoencoder().eval()
    if weights == "trained":
        if os.path.exists(checkpoint):
            ae.load_state_dict(torch.load(checkpoint))
        else:
            ae, losses = train_briefly(ae, train_seconds)
            torch.save(ae.state_dict(), checkpoint)
            print(json.dumps({"trained_steps": len(losses), "loss_first": losses[0], "loss_last": losses[-1]}))
    return ae


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


def dense_estimate(decode, z, probes=4):
    """Seconds and bytes of the dense route, extrapolated: k jvps (one column of J each), then QR of n x k."""
    with torch.no_grad():
        jvp(decode, (z,), (torch.randn_like(z),))  # warm-up
        t0 = time.perf_counter()
        for _ in range(probes):
            jvp(decode, (z,), (torch.randn_like(z),))
    per_jvp = (time.perf_counter() - t0) / probes
    qr_flops = 2 * N_PIXELS * K ** 2 - 2 * K ** 3 / 3  # Householder QR of an n x k matrix
    return {"dense_jvp_s": per_jvp, "dense_J_s_estimated": per_jvp * K, "dense_qr_gflop": qr_flops / 1e9,
            "dense_memory_gb": 2 * N_PIXELS * K * 4 / 1e9}  # J and Q in float32


def run(method, weights, warm_steps, tol, max_iter, probes, checkpoint, train_seconds, alpha=1.0, dense=False,
        device="cpu", dtype="float32"):
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    dtype = getattr(torch, dtype)  # float64: is a residual floor float32's rounding or J's conditioning?
    ae = autoencoder(weights, checkpoint, train_seconds).to(device, dtype)
    generator = torch.Generator().manual_seed(2)
    x = smooth_images(1, generator).to(device, dtype)
    model = small_cnn().to(device, dtype)
    label = model(x).argmax(1)
    out = {"method": method, "weights": weights, "dtype": str(dtype), "tol": tol, "max_iter": max_iter, "threads": torch.get_num_threads()}
    with eval_mode(ae), torch.no_grad():
        z, decode = ae.encode(x), ae.decoder_at(x)
    t0 = time.perf_counter()
    scale = column_scale(decode, z, probes, torch.Generator(device).manual_seed(3)) if method == "jacobi" else None
    out["setup_s"] = time.perf_counter() - t0
    solves, a, xt = [], None, x
    for t in range(warm_steps + 1):
        v = margin_gradient(model, xt, label)
        t0 = time.perf_counter()
        projected, info = project_onto_matrix_free(decode, z, v, tol, max_iter, a0=a, scale=scale)
        solves.append({"step": t, "warm": a is not None, "s": round(time.perf_counter() - t0, 2),
                        "iterations": int(info["iterations"][0]), "residual": float(info["residual"][0]),
                        "converged": bool(info["converged"][0])})
        print(json.dumps(solves[-1]), flush=True)
        a = info["solution"]
        xt = (xt + alpha * projected / projected.flatten(1).norm(dim=1).clamp_min(1e-30)).clamp(0, 1)
    out.update(solves=solves, peak_rss_gb=round(peak_rss_gb(), 2))
    if device == "cuda":
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if dense:
        out.update(dense_estimate(decode, z))
    return out


def rows(devices, method=METHOD, warm_steps=2):
    """bench/table.py's row: one ImageNet-size projection by `method`, cold, then warm-started PGD-like steps,
    against the dense route estimated; each device in its own process (so that peak memory is its own)."""
    out = []
    for device in devices:
        cmd = [sys.executable, __file__, "--method", method, "--warm-steps", str(warm_steps), "--dense-estimate",
               "--device", device]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        result = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                            .stdout.strip().splitlines()[-1])
        cold, warm = result["solves"][0], result["solves"][1:]
        residuals = ", ".join(f"{w['residual']:.1e}" for w in warm)
        memory = f"peak RSS {result['peak_rss_gb']} GB" + (f", GPU {result['peak_gpu_gb']} GB" if device == "cuda" else "")
        out.append(row("tangent projection at ImageNet size (n 150,528, k 25,088), 1 image", device,
                       cold["s"], result["dense_J_s_estimated"], f"matrix-free CGLS ({method}), cold",
                       "dense: J by k jvps (+ QR), estimated", estimated=True,
                       note=f"cold: {cold['iterations']} iterations, residual {cold['residual']:.1e}, converged "
                            f"{cold['converged']}; warm steps: iterations {[w['iterations'] for w in warm]}, "
                            f"seconds {[w['s'] for w in warm]}, residuals ["
                            f"{residuals}]; {memory}; dense needs "
                            f"{result['dense_memory_gb']:.0f} GB (J and Q) + QR {result['dense_qr_gflop']:.0f} GFLOP "
                            f"(not included); random weights", iterations=cold["iterations"],
                       residual=cold["residual"], converged=cold["converged"], peak_rss_gb=result["peak_rss_gb"],
                       warm=warm))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=["cgls", "jacobi"], default="jacobi")
    ap.add_argument("--weights", choices=["random", "trained"], default="random")
    ap.add_argument("--warm-steps", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--checkpoint", default="/tmp/dimpled_vgg_ae_synthetic.pt")
    ap.add_argument("--train-seconds", type=float, default=180)
    ap.add_argument("--dense-estimate", action="store_true", help="also time jvps for the dense route's estimate")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args()
    print(json.dumps(run(args.method, args.weights, args.warm_steps, args.tol, args.max_iter, args.probes,
                         args.checkpoint, args.train_seconds, dense=args.dense_estimate, device=args.device,
                         dtype=args.dtype)))


if __name__ == "__main__":
    main()
