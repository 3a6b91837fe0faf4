
import pytest
import torch

from lib.learn import curves, data, session, train


def synthetic(shape, n_train=64, n_test=32, classes=10, seed=0):
    """Random tensors of the right shape: exercise the code path of data sets we cannot have here."""
    g = torch.Generator().manual_seed(seed)
    return data.Data("synthetic", torch.rand(n_train, *shape, generator=g),
                     torch.randint(0, classes, (n_train,), generator=g),
                     torch.rand(n_test, *shape, generator=g), torch.randint(0, classes, (n_test,), generator=g),
                     [str(c) for c in range(classes)], "synthetic test tensors")


def test_paper_settings_and_overrides():
    cfg = train.classifier_config("mnist")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.optimizer) == (40, 200, 0.01, 1e-4, "sgd")
    assert train.classifier_config("cifar10").lr_milestones == (80, 120)
    assert train.autoencoder_config("cifar10").latent_dim == 128
    assert train.autoencoder_config("mnist", epochs=3, latent_dim=None).epochs == 3
    with pytest.raises(ValueError, match="dataset must be one of"):
        train.classifier_config("svhn")
    with pytest.raises(ValueError, match="unknown setting"):
        train.classifier_config("mnist", epoch=3)
    with pytest.raises(ValueError, match="epochs must be positive"):
        train.autoencoder_config("mnist", epochs=-1)


def test_classifier_learns_and_is_cached(tmp_cache):
    # A separable problem: the label is which half of the image is brighter.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 1, 28, 28, generator=g) * 0.5
    y = torch.randint(0, 2, (400,), generator=g)
    x[y == 1, :, :14] += 0.5
    d = data.Data("mnist", x[:300], y[:300], x[300:], y[300:], ["0", "1"], "synthetic halves")
    cfg = train.classifier_config("mnist", epochs=5, batch_size=50, lr=0.1)
    first = train.get_classifier(cfg, d)
    assert not first.cached and train.accuracy(first.model, d.test_x, d.test_y, "cpu") > 0.9
    assert first.meta["history"][-1] < first.meta["history"][0]
    second = train.get_classifier(cfg, d)
    assert second.cached and second.meta == first.meta
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert train.get_classifier(cfg, d.subset(None, 50)).cached  # the test images are not part of the key
    assert not train.get_classifier(cfg, d.subset(200, None)).cached  # other training data, other key


def test_training_is_deterministic_given_the_seed():
    d = synthetic((1, 28, 28))
    cfg = train.classifier_config("mnist", epochs=1, batch_size=16)
    weights = []
    for _ in range(2):
        torch.manual_seed(cfg.seed)
        model, _ = train.fit(train.build_classifier(cfg), d.train_x, d.train_y,
                             torch.nn.functional.cross_entropy, cfg, "cpu")
        weights.append(model[2].weight.detach().clone())
    assert torch.equal(*weights)


def test_channels_last_training_is_the_same_computation(monkeypatch):
    """A conv net trains in channels_last on a CPU: one SGD step must move every weight as the default layout does,
    up to float32 rounding of the convolutions' sums (relative 1e-6 per sum of a few hundred terms; 1e-4 of the
    largest move allows for it, while a permuted layout would differ by the moves themselves), and the model comes
    back in the default layout."""
    import torch.nn.functional as F
    cfg = train.AutoencoderConfig("mnist", "conv", 4, 1, 16, 0.1, width=4, optimizer="sgd")
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    w0 = {k: v.clone() for k, v in _loaded(None).state_dict().items()}
    moved = {}
    for layout in ("channels_last", "default"):
        if layout == "default":
            monkeypatch.setattr(train, "is_convolutional", lambda m: False)
        model, _ = train.fit(_loaded(w0), x, None, F.mse_loss, cfg, "cpu")
        assert all(p.is_contiguous() for p in model.parameters())
        moved[layout] = {k: model.state_dict()[k] - w0[k] for k in w0 if w0[k].is_floating_point()}
    largest = max(d.abs().max() for d in moved["default"].values())
    assert largest > 0
    for k, d in moved["default"].items():
        assert (moved["channels_last"][k] - d).abs().max() <= 1e-4 * largest, k


def _loaded(state):
    """The small conv autoencoder of the test, with `state` (None: its initialisation)."""
    from lib.learn import models
    model = models.ConvAutoencoder(1, 28, 4, 4)
    if state is not None:
        model.load_state_dict(state)
    return model


def test_cifar_paths_run_on_synthetic_tensors(tmp_cache):
    d = synthetic((3, 32, 32), n_train=16, n_test=8)
    clf = train.get_classifier(train.classifier_config("cifar10", epochs=1, batch_size=8), d)
    assert clf.model(d.test_x).shape == (8, 10)
    ae = train.get_autoencoder(train.autoencoder_config("cifar10", epochs=1, batch_size=8, width=8), d)
    assert ae.model.latent_dim == 128 and ae.model(d.test_x).shape == d.test_x.shape


def test_autoencoder_loss_falls(tmp_cache):
    d = synthetic((1, 28, 28), n_train=64, n_test=16)
    t = train.get_autoencoder(train.autoencoder_config("mnist", epochs=4, batch_size=16, width=8), d)
    assert t.meta["history"][-1] < t.meta["history"][0]
    per_image = [((t.model(x[None]) - x[None]) ** 2).mean().item() for x in d.test_x]
    assert train.reconstruction_mse(t.model, d.test_x, "cpu", batch_size=5) == pytest.approx(sum(per_image) / 16)


def test_missing_resnet_weights_are_reported_as_unavailable(monkeypatch):
    def offline(pretrained=True):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(train.models, "imagenet_resnet50", offline)
    with pytest.raises(data.DatasetUnavailable, match="ResNet-50 weights"):
        train.get_classifier(train.classifier_config("imagenet"), synthetic((3, 224, 224), 2, 2))


def test_model_settings_take_the_parameter_and_default_the_rest_to_the_papers():
    settings = session.ModelSettings.of(3, {"ae_width": 16, "classifier_epochs": {"mnist": 7}})
    assert settings == session.ModelSettings(seed=3, ae_width=16, classifier_epochs={"mnist": 7})
    assert settings.ae_epochs is None
    with pytest.raises(ValueError, match="ae_epoch not a model setting"):
        session.ModelSettings.of(0, {"ae_epoch": 3})


def test_epochs_to_reach_recovers_a_power_law_and_refuses_a_flat_curve():
    """On an exact power law v = 0.02 e^-0.5 the fitted extrapolation hits the analytic epoch (0.02/0.007)^2; a curve
    that does not fall gives None; one already below the target gives its last epoch."""
    curve = [0.02 * e ** -0.5 for e in range(1, 6)]
    assert abs(curves.epochs_to_reach(curve, 0.007) - (0.02 / 0.007) ** 2) < 1e-6 * (0.02 / 0.007) ** 2
    assert curves.epochs_to_reach([0.01, 0.011, 0.012], 0.007) is None
    assert curves.epochs_to_reach([0.01], 0.007) is None
    assert curves.epochs_to_reach([0.01, 0.006], 0.007) == 2.0


def test_trained_weights_do_not_depend_on_the_callers_thread_count(monkeypatch):
    """`make report` gives each kernel two torch threads, `make -j2 report` one: fit trains with TRAIN_THREADS either
    way, so the same configuration gives bit-identical weights. Without the pin the two differ (checked first: where
    this processor's kernels do not depend on the thread count, the test has nothing to show and is skipped)."""
    import contextlib

    import torch.nn.functional as F

    from lib.learn import models

    def weights(threads):
        torch.set_num_threads(threads)
        x = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        cfg = train.autoencoder_config("mnist", epochs=2, batch_size=64, width=8, latent_dim=8)
        m, _ = train.fit(models.ConvAutoencoder(1, 28, 8, 8), x, None, F.mse_loss, cfg, "cpu")
        return torch.cat([p.flatten() for p in m.state_dict().values() if p.is_floating_point()])

    before = torch.get_num_threads()
    try:
        with monkeypatch.context() as m:
            m.setattr(train, "torch_threads", lambda n: contextlib.nullcontext())
            if torch.equal(weights(2), weights(1)):
                pytest.skip("this processor's kernels give the same weights with 1 and 2 threads")
        assert torch.equal(weights(2), weights(1))
    finally:
        torch.set_num_threads(before)
