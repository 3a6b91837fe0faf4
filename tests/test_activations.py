"""lib.learn.activations.Softplus is torch's Softplus to float rounding, in every way the report differentiates it."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import jacfwd, jvp, vjp, vmap

from lib.learn import activations, iae, models
from lib.learn.activations import Softplus, softplus

# Both compute log1p(exp(-|βx|)) + max(βx, 0) (over β) with correctly rounded-to-a-few-ulp exp and log1p, in another
# order of operations: each of the ~5 roundings is at most half an ulp of a value no larger than |x| + log 2.
ULPS = 8


def _close(a, b):
    eps = torch.finfo(a.dtype).eps
    tol = ULPS * eps * (b.abs() + 1e-30) + torch.finfo(a.dtype).tiny
    return bool(((a - b).abs() <= tol).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beta", [1.0, 10.0, 100.0])
def test_values_match_torch_across_regimes(dtype, beta):
    # far negative (exp underflow), around 0, and past the threshold (linear: exactly x)
    x = torch.cat([torch.linspace(-60, 60, 4001, dtype=dtype), torch.randn(5000, dtype=dtype) * 3]) / beta
    got, want = softplus(x, beta), F.softplus(x, beta)
    assert _close(got, want)
    linear = x * beta > 20
    assert torch.equal(got[linear], x[linear])


def test_layout_is_kept_and_values_match():
    x = torch.randn(6, 5, 7, 7).to(memory_format=torch.channels_last)
    y = Softplus()(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert _close(y, F.softplus(x))
    xt = torch.randn(7, 9).t()  # a transposed view
    assert _close(softplus(xt), F.softplus(xt))


@pytest.mark.parametrize("beta", [1.0, 100.0])
def test_first_and_second_derivatives_by_finite_differences(beta):
    x = (torch.randn(4, 6, dtype=torch.float64) * 3 / beta).requires_grad_()
    f = lambda t: softplus(t, beta)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(f, (x,))


def test_torch_func_transforms_agree_with_torch_softplus():
    x, v = torch.randn(5, 8), torch.randn(5, 8)
    ours = lambda t: softplus(t, 2.0)  # noqa: E731
    ref = lambda t: F.softplus(t, 2.0)  # noqa: E731
    assert _close(jvp(ours, (x,), (v,))[1], jvp(ref, (x,), (v,))[1])
    assert _close(vjp(ours, x)[1](v)[0], vjp(ref, x)[1](v)[0])
    assert _close(vmap(ours)(x), ref(x))
    assert torch.allclose(vmap(jacfwd(ours))(x), vmap(jacfwd(ref))(x), rtol=ULPS * 1.2e-7, atol=0)


def test_the_autoencoders_use_it_and_compute_torchs_function():
    ae = models.ConvAutoencoder(1, 28, latent_dim=4, width=4).eval()
    acts = [m for m in ae.modules() if isinstance(m, torch.nn.Softplus)]
    assert len(acts) == 7 and all(isinstance(m, Softplus) for m in acts)
    x = torch.rand(3, 1, 28, 28)
    y = ae(x)
    for m in acts:  # the same network with torch's own module
        m.forward = torch.nn.Softplus.forward.__get__(m)
    assert torch.allclose(y, ae(x), rtol=1e-5, atol=1e-6)
    i = iae.isometric_autoencoder((1, 28, 28), 4, 4, softplus_beta=100.0)
    assert all(isinstance(m, Softplus) and m.beta == 100.0 for m in i.modules() if isinstance(m, torch.nn.Softplus))


def test_other_devices_and_dtypes_fall_back_to_torch():
    x = torch.randn(10, dtype=torch.bfloat16)
    assert torch.equal(softplus(x), F.softplus(x))
    assert not activations._numpy_ok(x)
