"""Classifier checkpoints during training, cached: for DMM's two phases (the boundary first clings to the data
manifold, then dimples), measured over epochs in notebook 06.

`classifier_checkpoints` trains the very classifier of `lib.train.classifier_for` (same configuration, data,
seed and seeded batches: `fit_checkpointed` is `lib.train.fit` plus a copy of the weights after chosen epochs),
so its last checkpoint is the model the other notebooks use. One cache entry holds every checkpoint; a hit
trains nothing. lib.train is not edited, so the cache keys of the models there stay as they are.
"""
from dataclasses import asdict

import torch
import torch.nn.functional as F

from lib import cache
from lib.runtime import per_dataset, progress
from lib.train import TRAINING_CODE, build_classifier, classifier_config, make_optimizer


def fit_checkpointed(model, x, y, cfg, device, at, desc="train"):
    """lib.train.fit for a classifier (cross-entropy, seeded batches), returning {epoch: state_dict} for the epochs in `at`."""
    g = torch.Generator().manual_seed(cfg.seed)
    opt, sched = make_optimizer(model, cfg)
    model.to(device).train()
    states = {}
    for epoch in progress(range(1, cfg.epochs + 1), desc=desc, leave=False):
        perm, total = torch.randperm(len(x), generator=g), 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            xb = x[idx].to(device)
            if getattr(cfg, "hflip", False):
                flip = (torch.rand(len(idx), generator=g) < 0.5).to(device)
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(total / len(x))
        elif sched is not None:
            sched.step()
        if epoch in at:
            states[epoch] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return states


def classifier_checkpoints(data, seed, device="cpu", epochs=None, train_subset=None, at=(1, 2, 5, 10, 20, 50, 100, 200)):
    """{epoch: model in eval mode} for the epochs in `at` (within 1..epochs; the last epoch always included), for the
    classifier that `lib.train.classifier_for(data, seed, device, epochs, train_subset)` returns. Cached."""
    cfg = classifier_config(data.name, epochs=per_dataset(epochs, data.name), seed=seed)
    if cfg.arch == "resnet50":
        raise ValueError("checkpoints need a classifier trained here; imagenet's ResNet-50 is pretrained")
    d = data.subset(per_dataset(train_subset, data.name), None, seed)
    at = sorted({int(e) for e in at if 1 <= int(e) <= cfg.epochs} | {cfg.epochs})

    def build():
        torch.manual_seed(cfg.seed)
        model = build_classifier(cfg, d.num_classes)
        states = fit_checkpointed(model, d.train_x, d.train_y, cfg, device, set(at), f"{cfg.dataset} checkpoints")
        flat = {f"epoch{e}/{k}": v for e, sd in states.items() for k, v in sd.items()}
        return flat, {"config": asdict(cfg), "epochs": at, "data_id": d.identity()}

    key = cache.config_hash({"classifier_checkpoints": asdict(cfg), "data": d.identity(), "at": at},
                            TRAINING_CODE + [fit_checkpointed])
    entry, _ = cache.cached("checkpoints", key, build)
    out = {}
    for e in at:
        model = build_classifier(cfg, d.num_classes)
        prefix = f"epoch{e}/"
        model.load_state_dict({k[len(prefix):]: v for k, v in entry["state_dict"].items() if k.startswith(prefix)})
        out[e] = model.to(device).eval()
    return out
