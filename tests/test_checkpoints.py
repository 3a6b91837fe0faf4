"""lib.learn.checkpoints: the last checkpoint is the classifier lib.learn.train trains, and checkpoints are cached."""
import torch

from lib.learn import checkpoints, train
from tests.test_train import synthetic


def test_last_checkpoint_is_the_cached_classifier(tmp_cache):
    d = synthetic((1, 28, 28), n_train=120, n_test=20)
    d.name = "mnist"
    ref = train.classifier_for(d, 0, "cpu", epochs=3).model
    cps = checkpoints.classifier_checkpoints(d, 0, "cpu", epochs=3, at=(1, 2, 7))
    assert sorted(cps) == [1, 2, 3]  # 7 > epochs: dropped; the last epoch: always there
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(cps[3].state_dict()[k], v, rtol=0, atol=0)
    assert any((cps[1].state_dict()[k] != v).any() for k, v in ref.state_dict().items())
    again = checkpoints.classifier_checkpoints(d, 0, "cpu", epochs=3, at=(1, 2, 7))
    assert len(list((tmp_cache / "checkpoints").glob("*.pt"))) == 1
    torch.testing.assert_close(again[1].state_dict(), cps[1].state_dict())
