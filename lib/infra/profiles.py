"""The report's profiles (smoke, quick, paper) and the settings a profile shares between notebooks.

notebooks/params/<profile>.yaml holds each profile: an `all` section for the settings several notebooks share (the
models' identity, the attacked images and the attack settings), then a section per notebook. A notebook declares a
shared setting that has no single sensible literal (model_settings, attack) with the default None: run on its own
(JupyterLab), it reads the profile's value from here, so each setting is written once, in the profile.
lib.reporting.params checks those files; this module only reads them (no torch, no kernel).
"""
from pathlib import Path

import yaml

PROFILES = ("smoke", "quick", "paper")
PARAMS = Path(__file__).resolve().parents[2] / "notebooks" / "params"


def section(table, notebook, declared=None):
    """The settings a profile's `table` gives `notebook`: the `all` section's (those it declares, where `declared` is
    given), overridden by its own section's. The one merge, for `make report` (lib.reporting.params) and a lab run."""
    common = {k: v for k, v in (table.get("all") or {}).items() if declared is None or k in declared}
    return {**common, **(table.get(notebook) or {})}


def shared(profile, name, value=None, notebook=None):
    """`value`, or where it is None what the profile gives `name` for `notebook`: its own section's value, else the
    shared one (the `all` section), as a `make report` run would inject it."""
    if value is not None:
        return value
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    path = PARAMS / f"{profile}.yaml"
    given = section(yaml.safe_load(path.read_text()) or {}, notebook)
    if name not in given:
        raise ValueError(f"{name} is None and {path.name} gives it no value (neither `all` nor {notebook}): give one")
    return given[name]
