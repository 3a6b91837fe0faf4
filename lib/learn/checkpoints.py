"""Classifier checkpoints during training, cached: for DMM's two phases (the boundary first clings to the data
manifold, then dimples), measured over epochs in notebook 06.

`classifier_checkpoints` trains the very classifier of `lib.learn.train.classifier_for` (same configuration, data, seed,
seeded batches and training loop, `lib.learn.train.fit`, which keeps a copy of the weights after the chosen epochs), so
its last checkpoint is the model the other notebooks use. One cache entry holds every checkpoint; a hit trains
nothing.
"""
from dataclasses import asdict

import torch
import torch.nn.functional as F

from lib.infra import cache
from lib.infra.artifacts import Artifact
from lib.learn.train import TRAINING_CODE, build_classifier, classifier_setup, fit


def classifier_checkpoints(data, seed, device="cpu", epochs=None, train_subset=None, at=(1, 2, 5, 10, 20, 50, 100, 200),
                           lr=None):
    """{epoch: model in eval mode} for the epochs in `at` (within 1..epochs; the last epoch always included), for the
    classifier that `lib.learn.train.classifier_for(data, seed, device, epochs, train_subset, lr)` returns. Cached."""
    cfg, d = classifier_setup(data, seed, epochs, train_subset, lr)
    if cfg.arch == "resnet50":
        raise ValueError("checkpoints need a classifier trained here; imagenet's ResNet-50 is pretrained")
    at = sorted({int(e) for e in at if 1 <= int(e) <= cfg.epochs} | {cfg.epochs})

    def build():
        torch.manual_seed(cfg.seed)
        states = {}

        def keep(epoch, model):
            if epoch in at:
                states.update({f"epoch{epoch}/{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()})

        fit(build_classifier(cfg, d.num_classes), d.train_x, d.train_y, F.cross_entropy, cfg, device,
            f"{cfg.dataset} checkpoints", on_epoch=keep)
        return states, {"config": asdict(cfg), "epochs": at, "data_id": d.identity()}

    key = CHECKPOINTS.key({"classifier_checkpoints": asdict(cfg), "data": d.identity(), "at": at})
    entry, _ = cache.cached(CHECKPOINTS.kind, key, build)
    out = {}
    for e in at:
        model = build_classifier(cfg, d.num_classes)
        prefix = f"epoch{e}/"
        model.load_state_dict({k[len(prefix):]: v for k, v in entry["state_dict"].items() if k.startswith(prefix)})
        out[e] = model.to(device).eval()
    return out


# What defines the checkpoints (lib.infra.artifacts): the classifier's training and the epochs kept.
CHECKPOINTS = Artifact("checkpoints", 2, TRAINING_CODE + (classifier_checkpoints,))
