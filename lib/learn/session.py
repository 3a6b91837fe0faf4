"""The report's models as the notebooks use them, and how a notebook that uses them opens (one call instead of the
same three lines in each)."""
from typing import NamedTuple

from lib.infra import runtime
from lib.infra.model_settings import ModelSettingsFields
from lib.learn import data, train


class ModelSettings(ModelSettingsFields):
    """The settings that make the report's models what they are (lib.infra.model_settings: the fields, typed and
    commented), declared by every notebook that uses the models, so that each gets the classifier notebook 01 trained
    and the autoencoder notebook 02 trained."""

    def classifier(self, data, device="cpu", seed=None):
        """Notebook 01's classifier for `data` (seed: another seed's, for replication). Cached."""
        return train.classifier_for(data, self.seed if seed is None else seed, device, self.classifier_epochs,
                                    self.classifier_train_subset, self.classifier_lr)

    def autoencoder(self, data, device="cpu", seed=None, epochs=None, latent_dim=None, train_subset=None):
        """Notebook 02's autoencoder for `data`; seed / epochs / latent_dim / train_subset override the settings' (a
        replicate, a shortened run, another k, fewer training images). Cached."""
        return train.autoencoder_for(data, self.seed if seed is None else seed, device,
                                     self.ae_epochs if epochs is None else epochs,
                                     self.ae_train_subset if train_subset is None else train_subset,
                                     self.ae_latent_dim if latent_dim is None else latent_dim, self.ae_width)

    def models(self, data, device="cpu"):
        """(classifier, autoencoder) for `data`. Raises DatasetUnavailable (saying how to get it) when one cannot be
        had, e.g. the ResNet-50 weights offline."""
        return self.classifier(data, device), self.autoencoder(data, device)


class Session(NamedTuple):
    """What a notebook that uses the models opens with (`start`)."""

    run: runtime.Run               # seeds, device, threads, the header; run.elapsed()
    model_settings: ModelSettings  # the profile's models: .classifier(d), .autoencoder(d), .models(d)
    found: dict                    # {data set: Data} of the data sets that could be loaded
    missing: dict                  # {data set: why not available, in words}


def start(notebook, profile, seed, device, datasets, model_settings=None, test_subset=None) -> Session:
    """runtime.start (seeds, device, torch threads, the header), the typed model settings (the profile's where
    `model_settings` is None: lib.infra.profiles), and the data sets loaded, each missing one shown with how to get it.

    test_subset: evaluate on this many random test images (int or {dataset: n}); None: every test image.
    Returns a Session (it unpacks as run, model_settings, found, missing)."""
    run = runtime.start(notebook, profile, seed, device)
    settings = ModelSettings.of(seed, run.shared("model_settings", model_settings))
    found, missing = data.load_shown(datasets, None, test_subset, seed)
    return Session(run, settings, found, missing)
