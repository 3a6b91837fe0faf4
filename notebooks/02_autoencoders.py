# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The autoencoders
#
# The manifold in the Dimpled Manifold Model is the image of an autoencoder's decoder: at an image x
# the tangent space is spanned by the columns of dD/dz at z = E(x) (notebook 03). Here we train the
# autoencoders of the paper and its reproduction (Karner, *The Dimpled Manifold Revisited*) and check that
# they reconstruct what they should:
#
# | data set | architecture | latent k | training |
# |---|---|---|---|
# | MNIST, Fashion-MNIST | conv: 4 conv layers (BatchNorm, Softplus) + 1 linear layer on each side | 16 | Adam 1e-3, batch 144, MSE, 1000 epochs |
# | CIFAR-10 | the same family | 128 | Adam 1e-3, batch 32, MSE, 400 epochs |
# | ImageNet | VGG16-style, 13 conv layers each side, MaxPool/MaxUnpool | 512x7x7 = 25,088 | Adam 1e-4 (x0.8 on a 7-epoch plateau), batch 32, 325 epochs |
#
# Autoencoders see raw pixels in [0, 1]; the decoder ends in a sigmoid. MSE is per pixel, in
# [0, 1] pixel scale, on train and test images. The quick profile trains for far fewer epochs than
# the paper's 1000: its reconstructions are rougher, and the table says so by showing the epochs.

# %% tags=["parameters"]
from typing import Optional, Union

profile: str = "quick"                   # [any] smoke | quick | paper: which settings these are, for the record
datasets: list[str] = ["mnist", "fashion_mnist"]  # [non-empty] any of mnist, fashion_mnist, cifar10, imagenet
test_subset: Union[int, dict[str, int], None] = None  # [≥ 1] evaluate on this many random test images (or {dataset: n}); None: all
n_show: int = 8                          # [≥ 0] images per reconstruction grid
seed: int = 0                            # [≥ 0] seeds the subsets, the initialisation and the batch order
device: str = "auto"                     # [any] auto | cpu | cuda | cuda:N
model_settings: Optional[dict] = None    # [any] the models (docs/running.md, "Profiles"; a key left out: the paper's); None: the profile's

# %%
import pandas as pd
import torch

from lib.figures import plots
from lib.inference import published
from lib.infra import runtime
from lib.learn import curves, data, session, train
from lib.reporting import report

run, model_settings, found, missing = session.start("02_autoencoders", profile, seed, device,
                                                    datasets, model_settings, test_subset)

# %% [markdown]
# ## Training (or loading from the cache)

# %%
trained = data.each_available(found, missing, lambda d: model_settings.autoencoder(d, run.device), "autoencoder")
print("\n".join(f"{name}: {t.summary()}" for name, t in trained.items()))
found.update({name: t.train_data for name, t in trained.items()})  # what each model was trained on

# %% [markdown]
# ## Reconstruction error beside the published numbers

# %%
def mse_published(name):
    return published.describe(published.AUTOENCODER_MSE, name, fmt="{:.5f}")

mse = {name: {split: train.reconstruction_mse(t.model, getattr(found[name], f"{split}_x"), run.device)
              for split in ("train", "test")} for name, t in trained.items()}
table = pd.DataFrame([{
    "data set": name,
    "latent k": t.meta["config"]["latent_dim"],
    "n = input dim": found[name].n,
    "epochs": t.meta["config"]["epochs"],
    "train images": len(found[name].train_x),
    "test images": len(found[name].test_x),
    "train MSE": f"{mse[name]['train']:.5f}",
    "test MSE": f"{mse[name]['test']:.5f}",
    "published train / test MSE": mse_published(name),
} for name, t in trained.items()])
table.style.hide(axis="index") if len(table) else runtime.show("No autoencoder could be trained: see above.")

# %%
losses = {name: t.meta["history"] for name, t in trained.items()}
if losses:
    plots.training_curves(losses, "MSE per pixel (mean over the epoch)", "Autoencoder training loss", logy=True);

# %% [markdown]
# The test reconstruction error after every epoch of the same training (the first 2,000 test images), beside the
# published test figures: where the curve is heading tells how many more epochs the published figure would take.

# %%
monitored = {name: t.meta["test_history"] for name, t in trained.items() if t.meta.get("test_history")}
if monitored:
    plots.monitored_curves(monitored, f"test MSE per pixel (first {train.MONITOR_IMAGES:,} images)",
                           "Test reconstruction error after each epoch",
                           published.marks(published.AUTOENCODER_MSE, monitored, "{:.5f}"), logy=True);

# %% [markdown]
# How far is each curve from the reproduction's test figure? A rough answer: the curve extrapolated as a power law in
# the epochs (fitted from epoch 2 on), with the time it would take at the speed it was trained.

# %%
reach = {name: curves.reach_note(t, published.AUTOENCODER_MSE.get(name, {}).get(published.REPRO, (None, None))[1],
                                "the reproduction's") for name, t in trained.items()}
runtime.show("\n".join(f"- **{name}**:{text}" for name, text in reach.items() if text) or "No published test figure to compare with.")

# %% [markdown]
# ## Originals and reconstructions (as the reproduction's appendix A)
# The first images of a seeded random draw from each split; the number under each reconstruction is
# its MSE per pixel.

# %%
g = torch.Generator().manual_seed(seed)
for name, t in trained.items():
    d = found[name]
    for split, x in (("train", d.train_x), ("test", d.test_x)):
        pick = x[torch.randperm(len(x), generator=g)[:n_show]]
        with torch.no_grad():
            rec = t.model(pick.to(run.device)).cpu()
        plots.reconstruction_grid(pick, rec, f"{name}, {split} images")

# %%
report.write_results(
    run, "02 · Autoencoders",
    headline=[h for name, t in trained.items() for h in (
        report.headline(f"{name} train MSE (k={t.meta['config']['latent_dim']}, {t.meta['config']['epochs']} epochs)",
                        mse[name]["train"], "", ""),
        report.headline(f"{name} test MSE", mse[name]["test"], "", mse_published(name)))],
    data_sources={name: d.describe() for name, d in found.items()},
    unavailable=missing,
    caveats=[f"{name}: the autoencoder's test reconstruction error is {mse[name]['test']:.2g} "
             f"({t.meta['config']['epochs']} epochs on {len(found[name].train_x):,} images; published: "
             f"{mse_published(name)}), so its tangent space is an estimate of the data manifold, not the manifold "
             f"itself.{reach.get(name, '')}" for name, t in trained.items()],
    autoencoders={name: {**mse[name], "n_train": len(found[name].train_x), "n_test": len(found[name].test_x),
                         "train_seconds": t.meta["train_seconds"], "config": t.meta["config"]}
                  for name, t in trained.items()},
)
print(f"wall time so far: {run.elapsed():.0f} s")
