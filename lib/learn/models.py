"""The classifiers and autoencoders of Shamir et al. (2021) and their public reproduction (Karner, "The
Dimpled Manifold Revisited"): MNIST MLP, CIFAR-10 7-conv net, ImageNet ResNet-50, conv and VGG autoencoders.

Images are in [0, 1]; a classifier's first layer is its input normalisation, so attacks and
projections work in pixel space. Every autoencoder has the same small interface:

    ae.latent_dim          k
    ae.encode(x)           z, shape (B, k)
    ae.decoder_at(x)       a function z (B, k) -> x_hat (B, C, H, W); for the VGG autoencoder it
                           fixes x's max-pooling indices (MaxUnpool needs them), else it is the decoder
    ae(x)                  the reconstruction D(E(x))
"""
import torch
from torch import nn

from lib.learn.activations import Softplus

# Per-channel mean / std of each data set's training images (the usual published values).
NORMALISATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class Normalize(nn.Module):
    """(x - mean) / std per channel: the first layer of every classifier."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def mnist_mlp(dataset="mnist", hidden=256, dropout=0.2, num_classes=10):
    """MLP 784-256-256-10, ReLU, dropout 0.2 (Shamir et al. appendix G)."""
    return nn.Sequential(
        Normalize(*NORMALISATION[dataset]),
        nn.Flatten(),
        nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


def cifar_convnet(dataset="cifar10", width=128, num_classes=10):
    """7 conv layers (128 channels in the first), BatchNorm, ReLU, MaxPool, then a linear layer.

    Our reading of Shamir et al. appendix G: widths 128-128 | 256-256 | 512-512 | 512, a 2x2
    max-pool after each block of two, global average pooling before the classifier.
    """
    widths = [width, width, 2 * width, 2 * width, 4 * width, 4 * width, 4 * width]
    layers, c_in = [Normalize(*NORMALISATION[dataset])], 3
    for i, c_out in enumerate(widths):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        if i in (1, 3, 5):
            layers.append(nn.MaxPool2d(2))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


# ImageNet class indices of the two classes the paper uses.
IMAGENET_CLASSES = {"n01443537": 1, "n01484850": 2}  # goldfish, great white shark


def imagenet_resnet50(pretrained=True):
    """torchvision ResNet-50 with IMAGENET1K_V2 weights (top-1 80.858%), normalisation first.

    The weights come from torchvision's download; offline, without them in the torch hub cache,
    this raises the torchvision error, which the caller turns into a clear "not available" message.
    """
    from torchvision.models import ResNet50_Weights, resnet50

    net = resnet50(weights=ResNet50_Weights.IMAGENET1K_V2 if pretrained else None)
    return nn.Sequential(Normalize(*NORMALISATION["imagenet"]), net)


class ConvAutoencoder(nn.Module):
    """Gropp et al.'s conv autoencoder: 4 conv layers with BatchNorm + Softplus and one linear layer
    on each side; sigmoid output so that reconstructions are pixels in [0, 1].

    28x28 inputs (MNIST) use strides 1-2-2-1 (feature map 7x7), 32x32 inputs (CIFAR-10) 2-2-2-1 (4x4).
    """

    def __init__(self, channels=1, size=28, latent_dim=16, width=32):
        super().__init__()
        if size not in (28, 32):
            raise ValueError(f"size must be 28 or 32, got {size}")
        if latent_dim < 1 or latent_dim >= channels * size * size:
            raise ValueError(f"latent_dim must be in 1..{channels * size * size - 1}, got {latent_dim}")
        strides = (1, 2, 2, 1) if size == 28 else (2, 2, 2, 1)
        widths = (width, 2 * width, 4 * width, 4 * width)
        self.latent_dim, self.shape = latent_dim, (channels, size, size)
        side = size // 4 if size == 28 else size // 8
        self.feature_shape = (widths[-1], side, side)

        enc, c_in = [], channels
        for c_out, s in zip(widths, strides):
            enc += [nn.Conv2d(c_in, c_out, 3, stride=s, padding=1), nn.BatchNorm2d(c_out), Softplus()]
            c_in = c_out
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(widths[-1] * side * side, latent_dim))

        dec = [nn.Linear(latent_dim, widths[-1] * side * side), nn.Unflatten(1, self.feature_shape)]
        rev = list(reversed(widths))
        outs = rev[1:] + [channels]
        for i, (c_in, c_out, s) in enumerate(zip(rev, outs, reversed(strides))):
            last = i == len(rev) - 1
            conv = (nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1) if s == 2
                    else nn.Conv2d(c_in, c_out, 3, padding=1))
            dec += [conv] + ([nn.Sigmoid()] if last else [nn.BatchNorm2d(c_out), Softplus()])
        self.decoder = nn.Sequential(*dec)

    def encode(self, x):
        return self.encoder(x)

    def decoder_at(self, x=None):
        return self.decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))


# VGG16's 13 conv layers: widths per block, a 2x2 max-pool after each block.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def _conv_bn_relu(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


class VGGAutoencoder(nn.Module):
    """VGG16-style autoencoder for 224x224 ImageNet: 13 conv layers (BatchNorm, ReLU) and 5 max-pools
    in the encoder, the mirror image with MaxUnpool in the decoder, sigmoid output.
    Latent = the last feature map, 512 x 7 x 7 = 25,088 (the paper reports 3,584).
    """

    def __init__(self, channels=3, blocks=VGG16_BLOCKS):
        super().__init__()
        self.blocks = blocks
        self.enc, self.dec = nn.ModuleList(), nn.ModuleList()
        c_in = channels
        for widths in blocks:
            layers = []
            for w in widths:
                layers += _conv_bn_relu(c_in, w)
                c_in = w
            self.enc.append(nn.Sequential(*layers))
        self.latent_channels = c_in
        self.latent_dim = c_in * 7 * 7
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        # Decoder block i mirrors encoder block (n-1-i): its convs map widths back in reverse.
        outs = [b[0] for b in blocks][::-1][1:] + [channels]
        for widths, c_out in zip(reversed(blocks), outs):
            rev = list(reversed(widths))
            layers = []
            for w_in, w_out in zip(rev, rev[1:] + [c_out]):
                layers += _conv_bn_relu(w_in, w_out) if w_out != channels else [nn.Conv2d(w_in, w_out, 3, padding=1)]
            self.dec.append(nn.Sequential(*layers))

    def _encode(self, x):
        indices = []
        for block in self.enc:
            x, idx = self.pool(block(x))
            indices.append(idx)
        return x.flatten(1), indices

    def encode(self, x):
        return self._encode(x)[0]

    def _decoder(self, indices):
        def decode(z):
            h = z.view(z.shape[0], self.latent_channels, 7, 7)
            for block, idx in zip(self.dec, reversed(indices)):
                h = block(self.unpool(h, idx))
            return torch.sigmoid(h)

        return decode

    def decoder_at(self, x):
        """D(z) with the unpooling indices of x (the decoder is only defined together with them)."""
        return self._decoder(self._encode(x)[1])

    def forward(self, x):
        z, indices = self._encode(x)
        return self._decoder(indices)(z)
