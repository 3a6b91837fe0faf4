"""How a notebook that uses the report's models opens: one call instead of the same three lines in each."""
from lib.infra import runtime
from lib.learn import data, train


def start(notebook, profile, seed, device, datasets, model_settings=None, test_subset=None):
    """runtime.start (seeds, device, torch threads, the header), the typed model settings (the profile's where
    `model_settings` is None: lib.infra.profiles), and the data sets loaded, each missing one shown with how to get it.

    test_subset: evaluate on this many random test images (int or {dataset: n}); None: every test image.
    Returns (run, model_settings, found, missing): the Run, a lib.learn.train.ModelSettings, {name: Data} and
    {name: why not available}."""
    run = runtime.start(notebook, profile, seed, device)
    settings = train.ModelSettings.of(seed, run.shared("model_settings", model_settings))
    found, missing = data.load_shown(datasets, None, test_subset, seed)
    return run, settings, found, missing
