"""A trained model's checkpoints: the weights its own training kept after the epochs of
`lib.learn.train.kept_epochs` (1, 2, 5, 10, 20, 50, ...), each a cache entry of its own.

Notebook 06 follows the classifier's geometry over them (DMM's two phases: the boundary first clings to the data
manifold, then dimples); notebook 11 follows the discriminating claims over the classifier's and the autoencoder's.
The checkpoints come from the very run that trained the model the other notebooks use (the last "checkpoint" is that
model), so reading them trains nothing; a model trained before its training kept checkpoints is trained again, once,
which keeps them (the training is deterministic: the same weights).
"""
from lib.infra import cache
from lib.infra.runtime import notify
from lib.learn import train


def checkpoints(kind, trained, device="cpu", at=None):
    """{epoch: lib.learn.train.Trained} (eval mode) of the model `trained` (kind: classifier | autoencoder, as
    lib.learn.train.get_classifier / get_autoencoder returned it): its checkpoints after the kept epochs in `at` (None:
    all of them) and, at its last epoch, the model itself."""
    cfg, data = train.config_from(kind, trained.meta["config"]), trained.train_data
    if kind == "classifier" and cfg.arch == "resnet50":
        raise ValueError("checkpoints need a classifier trained here; imagenet's ResNet-50 is pretrained")
    kept = train.kept_epochs(cfg.epochs)
    wanted = kept if at is None else sorted({int(e) for e in at} & set(kept))
    entries = {e: cache.lookup(kind, train.checkpoint_key(kind, cfg, data, e)) for e in wanted}
    if any(v is None for v in entries.values()):
        # trained before training kept checkpoints (or they were removed): the same training again keeps them
        notify(f"{cfg.dataset} {kind}: its checkpoints are not in the cache; training it again, once, to keep them "
               "(the same weights)")
        cache.discard(kind, trained.key, "its checkpoints are missing")
        trained = (train.get_classifier if kind == "classifier" else train.get_autoencoder)(cfg, data, device)
        entries = {e: cache.lookup(kind, train.checkpoint_key(kind, cfg, data, e)) for e in wanted}
        if any(v is None for v in entries.values()):
            raise RuntimeError(f"{cfg.dataset} {kind}: training did not keep the checkpoints of epochs {wanted}")
    out = {}
    for e, entry in entries.items():
        model = train.model_from_entry(kind, cfg, entry, data.shape, data.num_classes)
        out[e] = train.Trained(model.to(device).eval(), entry["meta"], True, entry["key"], data)
    out[cfg.epochs] = trained
    return out


def classifier_checkpoints(data, seed, device="cpu", epochs=None, train_subset=None, at=(1, 2, 5, 10, 20, 50, 100, 200),
                           lr=None):
    """{epoch: model in eval mode} for the kept epochs in `at` and the last epoch, of the classifier that
    `lib.learn.train.classifier_for(data, seed, device, epochs, train_subset, lr)` returns (trained if not cached)."""
    clf = train.classifier_for(data, seed, device, epochs, train_subset, lr)
    return {e: t.model for e, t in checkpoints("classifier", clf, device, at).items()}
