"""lib.learn.checkpoints: a model's training keeps its checkpoints; a checkpoint after epoch e is the model trained
for e epochs; reading them trains nothing; a model cached without them is trained again, to the same weights."""
import pytest
import torch

from lib.learn import checkpoints, train
from tests.test_train import synthetic


def _same(a, b):
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=0, atol=0)


def test_kept_epochs_are_log_spaced_and_below_the_last():
    assert train.kept_epochs(1) == []
    assert train.kept_epochs(10) == [1, 2, 5]
    assert train.kept_epochs(40) == [1, 2, 5, 10, 20]
    assert train.kept_epochs(1000) == [1, 2, 5, 10, 20, 50, 100, 200, 500]


def _count_fits(monkeypatch):
    calls = []
    real = train._fit
    monkeypatch.setattr(train, "_fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_classifier_checkpoints_come_from_its_own_training(tmp_cache, monkeypatch):
    d = synthetic((1, 28, 28), n_train=120, n_test=20)
    d.name = "mnist"
    fits = _count_fits(monkeypatch)
    ref = train.classifier_for(d, 0, "cpu", epochs=3)
    assert len(fits) == 1 and len(list((tmp_cache / "classifier").glob("*.pt"))) == 3  # the model, epochs 1 and 2
    cps = checkpoints.classifier_checkpoints(d, 0, "cpu", epochs=3, at=(1, 2, 7))
    assert len(fits) == 1  # read, not trained
    assert sorted(cps) == [1, 2, 3]  # 7 > epochs: dropped; the last epoch: always there
    _same(ref.model, cps[3])
    assert any((cps[1].state_dict()[k] != v).any() for k, v in ref.model.state_dict().items())
    # the checkpoint after epoch 2 is the classifier trained for 2 epochs (same seed, same batches), bit for bit
    _same(train.classifier_for(d, 0, "cpu", epochs=2).model, cps[2])


def test_autoencoder_checkpoints_and_a_model_cached_without_them(tmp_cache, monkeypatch):
    d = synthetic((1, 28, 28), n_train=64, n_test=16)
    d.name = "mnist"
    ae = train.autoencoder_for(d, 0, "cpu", epochs=3, width=4)
    cps = checkpoints.checkpoints("autoencoder", ae)
    assert sorted(cps) == [1, 2, 3] and cps[3] is ae
    assert cps[1].meta["checkpoint_epoch"] == 1 and len(cps[1].meta["test_history"]) == 1
    assert cps[1].key != cps[2].key != ae.key
    # a worker loads a checkpoint as it loads a model: by its kind, key and config
    loaded = train.load_trained("autoencoder", cps[1].key, cps[1].meta["config"], d.shape)
    _same(cps[1].model, loaded)
    # the entry of epoch 1 removed (a model trained before training kept checkpoints): trained again, same weights
    path = next(p for p in (tmp_cache / "autoencoder").glob("*.pt") if p.stem == cps[1].key)
    path.unlink()
    fits = _count_fits(monkeypatch)
    again = checkpoints.checkpoints("autoencoder", ae)
    assert len(fits) == 1
    for e in (1, 2, 3):
        _same(cps[e].model, again[e].model)


def test_a_pretrained_classifier_has_no_checkpoints():
    class Pretrained:
        meta = {"config": {**train.classifier_config("imagenet").__dict__}}
        train_data = None
    with pytest.raises(ValueError, match="pretrained"):
        checkpoints.checkpoints("classifier", Pretrained())
