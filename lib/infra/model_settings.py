"""The settings that make the report's models what they are, defined once: typed, commented and torch-free, so that
the profile's checks (lib.reporting.params) read their types from here and the notebooks' accessors
(lib.learn.session.ModelSettings, which adds the models) share the same fields.

A per-data-set value is a number, {dataset: number}, or None: the paper's (for the training subsets: every image).
"""
from __future__ import annotations  # the fields' types stay the strings written below: params checks values by them

from dataclasses import dataclass, fields
from typing import Optional, Union  # noqa: F401 (named in the annotations)


@dataclass(frozen=True)
class ModelSettingsFields:
    """Set once per profile (the `all:` section of notebooks/params/<profile>.yaml, key `model_settings`)."""

    seed: int = 0
    classifier_epochs: Union[int, dict[str, int], None] = None        # the paper's: 40 (MLPs), 150 (CIFAR-10)
    classifier_train_subset: Union[int, dict[str, int], None] = None  # training images; None: all
    classifier_lr: Union[float, dict[str, float], None] = None        # None: the paper's (the MLPs' SGD: 0.01)
    ae_epochs: Union[int, dict[str, int], None] = None                # the paper's: 1000 (MNIST), 400 (CIFAR-10)
    ae_train_subset: Union[int, dict[str, int], None] = None          # training images; None: all
    ae_latent_dim: Union[int, dict[str, int], None] = None            # k; None: 16 (MNIST), 128 (CIFAR-10)
    ae_width: Optional[int] = None                                    # first conv layer's channels; None: 32

    @classmethod
    def of(cls, seed, settings):
        """The settings of a notebook's `model_settings` parameter (a dict; a key left out: the paper's) and seed."""
        unknown = sorted(set(settings) - set(field_types()))
        if unknown:
            raise ValueError(f"model_settings: {', '.join(unknown)} not a model setting; the settings are "
                             f"{', '.join(field_types())}")
        return cls(seed=seed, **settings)


def field_types():
    """{field: its type, as written above} for every setting but the seed: what the profile's checks accept."""
    return {f.name: f.type for f in fields(ModelSettingsFields) if f.name != "seed"}
