"""lib.studies.defence.iae_study: the plain autoencoder as an I-AE network keeps its function and its latent scale, and
the isometry measures see the same network the same way."""
import numpy as np
import pytest
import torch

from lib.learn import iae, models
from lib.studies.defence import iae_study


def _plain(seed=0):
    torch.manual_seed(seed)
    ae = models.ConvAutoencoder(1, 28, 4, 4)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        ae.train()(torch.rand(64, 1, 28, 28))
    return ae.eval()


def test_the_plain_autoencoder_as_an_iae_is_the_same_function():
    ae, x = _plain(), torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    net = iae_study.plain_as_iae(ae, x, torch.Generator().manual_seed(0))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    with torch.no_grad():
        assert torch.allclose(net(x), ae(x), atol=1e-5)


def test_the_latent_scale_is_the_same_measured_on_the_plain_or_the_folded_network():
    """Notebook 07 once scaled at the plain autoencoder (with BatchNorm), once at the folded one: the same factor."""
    for seed in range(3):
        ae, x = _plain(seed), torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
        folded = iae.fold_batchnorm(ae, iae.isometric_autoencoder((1, 28, 28), 4, iae_study.width_of(ae), 1.0))
        assert iae.latent_scale(ae, x, torch.Generator().manual_seed(0)) == \
            iae.latent_scale(folded, x, torch.Generator().manual_seed(0))
        scaled = iae_study.plain_as_iae(ae, x, torch.Generator().manual_seed(0))
        c = iae.latent_scale(folded, x, torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.allclose(scaled.encode(x), c * folded.encode(x), rtol=1e-4, atol=1e-6)


def test_isometry_measures_the_same_network_alike():
    ae, x = _plain(), torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    same = iae_study.plain_as_iae(ae, x, torch.Generator().manual_seed(0))  # what isometry builds from `ae`
    rows, sv, spread = iae_study.isometry("toy", ae, same, x, 0.5, seed=0)
    assert [r["model"] for r in rows] == ["plain AE", "I-AE"] and sv["plain AE"].shape == (4, 4)
    assert np.allclose(sv["plain AE"], sv["I-AE"]) and np.allclose(spread["plain AE"], spread["I-AE"])
    assert spread["I-AE"] == pytest.approx(np.abs(np.log(sv["I-AE"])).mean(1))
    assert rows[0]["median σ"] == pytest.approx(rows[1]["median σ"])


def test_sweep_table_lists_the_plain_autoencoder_then_each_lambda():
    trained = {1.0: iae.TrainedIAE(None, {"train_seconds": 3.0}, False, "a"),
               10.0: iae.TrainedIAE(None, {"train_seconds": 4.0}, True, "b")}
    terms = {1.0: {"recon": 1.0, "iso": 0.5, "piso": 0.5}, 10.0: {"recon": 2.0, "iso": 0.1, "piso": 0.1}}
    s = iae_study.Sweep({"recon": 0.9, "iso": 1.0, "piso": 1.0}, terms, trained, 10.0, "why")
    t = iae_study.sweep_table({"toy": s})
    assert list(t["model"]) == ["plain AE (latent rescaled)", "I-AE", "I-AE"]
    assert list(t["lambda"].iloc[1:]) == [1.0, 10.0] and list(t["train s"].iloc[1:]) == [3.0, 4.0]
    assert s.chosen is trained[10.0]
