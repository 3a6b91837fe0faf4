import pytest
import torch

from lib.learn import models


def test_normalize_is_the_per_channel_standardisation():
    x = torch.rand(4, 3, 8, 8)
    mean, std = models.NORMALISATION["cifar10"]
    expected = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(models.Normalize(mean, std)(x), expected)


def test_classifier_shapes_on_synthetic_tensors():
    assert models.mnist_mlp()(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    net = models.cifar_convnet()
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 7
    assert net[1].out_channels == 128
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("shape,k", [((1, 28, 28), 16), ((3, 32, 32), 128)])
def test_conv_autoencoder_interface(shape, k):
    ae = models.ConvAutoencoder(shape[0], shape[1], k, width=8).eval()
    x = torch.rand(3, *shape)
    z = ae.encode(x)
    assert z.shape == (3, k) and ae.latent_dim == k
    out = ae.decoder_at(x)(z)
    assert out.shape == x.shape and torch.allclose(out, ae(x)) and 0 <= out.min() and out.max() <= 1
    assert sum(isinstance(m, torch.nn.Conv2d) for m in ae.encoder) == 4


def test_conv_autoencoder_rejects_bad_latent_dim():
    with pytest.raises(ValueError, match="latent_dim"):
        models.ConvAutoencoder(1, 28, 784)
    with pytest.raises(ValueError, match="size"):
        models.ConvAutoencoder(1, 30, 16)


def test_vgg_autoencoder_is_vgg16_sized():
    ae = models.VGGAutoencoder().eval()
    assert sum(isinstance(m, torch.nn.Conv2d) for m in ae.enc.modules()) == 13
    assert sum(isinstance(m, torch.nn.Conv2d) for m in ae.dec.modules()) == 13
    assert ae.latent_dim == 25088
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        z = ae.encode(x)
        out = ae.decoder_at(x)(z)
    assert z.shape == (1, 25088) and out.shape == x.shape
    assert torch.allclose(out, ae(x).detach())
