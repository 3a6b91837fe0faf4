"""Benchmark: the price of the I-AE's Jacobian terms, and jvp / vjp against full Jacobians.

  step          one training step (forward, backward, Adam) of the plain autoencoder's loss (reconstruction)
                against one step of the I-AE loss (reconstruction + lambda (L_iso + L_piso)), same batch.
  loss          L_iso + L_piso on the same batch by one jvp and one vjp (lib.learn.iae) against full Jacobians
                (vmap(jacrev) of D at z and of E at x, then J_D u and u^T J_E: the reproduction's way); the
                values must agree, and both must backpropagate to the weights.
BatchNorm-free conv autoencoder (the I-AE's architecture), width 16, k = 16, random weights (the cost does not
depend on them), 1 thread by default. Run: .venv/bin/python bench/bench_iae.py [--batch 144] [--threads 1]
"""
import argparse

import torch
from torch.func import jacrev, vmap

from lib.learn import iae
from timing import timed  # bench/timing.py: this folder is on sys.path when a benchmark runs


def full_jacobian_terms(ae, x, z, u):
    """L_iso, L_piso from full Jacobians: J_D (B, n, k) and J_E (B, k, n) by vmap(jacrev)."""
    JD = vmap(jacrev(lambda zi: ae.decoder(zi[None])[0].flatten()))(z)
    JE = vmap(jacrev(lambda xi: ae.encoder(xi[None])[0]))(x).flatten(2)
    iso = ((torch.einsum("bnk,bk->bn", JD, u).norm(dim=1) - 1) ** 2).mean()
    piso = ((torch.einsum("bk,bkn->bn", u, JE).norm(dim=1) - 1) ** 2).mean()
    return iso, piso


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=144)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jacobian-batch", type=int, default=16,
                    help="images for the full-Jacobian comparison (vmap(jacrev) holds n backward passes per image: "
                         "the whole training batch runs out of memory on a 24 GB machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ae = iae.isometric_autoencoder((1, 28, 28), 16, 16, 1.0).eval()
    x = torch.rand(args.batch, 1, 28, 28)
    opt = torch.optim.Adam(ae.parameters(), 1e-4)

    def plain_step():
        loss = ((ae(x) - x) ** 2).flatten(1).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def iae_step():
        r, a, b = iae.iae_terms(ae, x, torch.Generator().manual_seed(0))
        loss = r + 10.0 * (a + b)
        opt.zero_grad()
        loss.backward()
        opt.step()

    plain_step(), iae_step()  # warm-up
    _, t_plain = timed(plain_step, args.repeats)
    _, t_iae = timed(iae_step, args.repeats)
    print(f"training step, batch {args.batch}: plain AE {t_plain * 1e3:.0f} ms, I-AE {t_iae * 1e3:.0f} ms "
          f"({t_iae / t_plain:.1f}x)")

    g = torch.Generator().manual_seed(1)
    x = x[:args.jacobian_batch]
    z = ae.encode(x).detach()
    u = iae.unit_latents(len(x), 16, g)

    def ours():
        loss = iae.iso_loss(ae.decoder, z, u) + iae.piso_loss(ae.encoder, x, u)
        loss.backward()
        return loss.detach()

    def full():
        loss = sum(full_jacobian_terms(ae, x, z, u))
        loss.backward()
        return loss.detach()

    ours(), full()
    v_ours, t_ours = timed(ours, args.repeats)
    v_full, t_full = timed(full, args.repeats)
    assert torch.allclose(v_ours, v_full, rtol=1e-4), (v_ours, v_full)
    print(f"L_iso + L_piso with backward, batch {len(x)}: jvp/vjp {t_ours * 1e3:.0f} ms, "
          f"vmap(jacrev) full Jacobians {t_full * 1e3:.0f} ms ({t_full / t_ours:.1f}x); values agree "
          f"({v_ours.item():.5f} vs {v_full.item():.5f})")


if __name__ == "__main__":
    main()
