"""The report's figures: one function per kind, matplotlib, axes labelled with units."""
import matplotlib.pyplot as plt
import numpy as np


def training_curves(histories, ylabel, title, logy=False):
    """One line per run: the mean training loss of each epoch."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, h in histories.items():
        ax.plot(np.arange(1, len(h) + 1), h, marker="o" if len(h) < 30 else None, ms=3, label=label)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def _show_image(ax, img):
    img = img.detach().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0))
    ax.set_xticks([])
    ax.set_yticks([])


def reconstruction_grid(originals, reconstructions, title):
    """Originals (top row) above their reconstructions D(E(x)) (bottom row), per-image MSE under each."""
    n = len(originals)
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.0), squeeze=False)
    for i in range(n):
        _show_image(axes[0, i], originals[i])
        _show_image(axes[1, i], reconstructions[i])
        mse = ((originals[i] - reconstructions[i]) ** 2).mean().item()
        axes[1, i].set_xlabel(f"{mse:.4f}", fontsize=8)
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("D(E(x))")
    fig.suptitle(f"{title}  (number: MSE per pixel)", fontsize=10)
    fig.tight_layout()
    return fig
