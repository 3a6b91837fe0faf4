"""Parameters are checked before any kernel starts, with one line naming the file and the key."""
import shutil
import subprocess

import papermill
import pytest

from lib.infra import profiles
from lib.reporting import execute, params, report


@pytest.fixture
def param_dir(tmp_path, monkeypatch):
    """A copy of notebooks/params to break."""
    shutil.copytree(params.PARAMS, tmp_path / "params")
    monkeypatch.setattr(params, "PARAMS", tmp_path / "params")
    return tmp_path / "params"


@pytest.fixture
def no_kernel(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_every_profile_is_valid():
    for profile in params.profile_names():
        params.check(profile)


def test_a_parameter_left_none_takes_what_its_profile_would_inject():
    """A notebook run on its own (JupyterLab) reads a None-default shared setting from its profile: the value a
    `make report` run injects (the notebook's own section before `all`), for every profile and every such parameter."""
    injected = 0
    for profile in params.profile_names():
        for path in params.notebook_paths():
            run_params = params.resolve(path.stem, profile)
            for name, p in params.declared(path).items():
                if p.default is None and name in ("model_settings", "attack"):
                    value = profiles.shared(profile, name, None, path.stem)
                    assert value is not None
                    assert value == run_params[name], (profile, path.stem, name)
                    injected += 1
    assert injected >= 3 * 8  # model_settings in 8 notebooks, for each profile
    assert profiles.shared("quick", "seed", 3) == 3  # a value given is kept
    assert profiles.shared("smoke", "model_settings", None, "09_replication")["classifier_epochs"] == 20  # its section
    assert profiles.shared("smoke", "model_settings", None, "03_on_off_manifold_attacks")["classifier_epochs"] == 1
    with pytest.raises(ValueError, match="no_such_setting is None"):
        profiles.shared("quick", "no_such_setting", None, "03_on_off_manifold_attacks")
    with pytest.raises(ValueError, match="profile must be one of"):
        profiles.shared("fast", "attack")


def test_unknown_key_in_all_is_refused_before_any_kernel(param_dir, tmp_reports, no_kernel):
    edit(param_dir / "smoke.yaml", "  seed: 0\n", "  seed: 0\n  n_image: 2\n")
    with pytest.raises(params.ParameterError, match=r"smoke\.yaml: all\.'n_image' is not declared by any notebook "
                                                    r"\(did you mean 'n_images'\?\)"):
        execute.execute(report.NOTEBOOKS / "01_classifiers.py", "smoke")


def test_duplicate_section_is_refused(param_dir, no_kernel, tmp_reports):
    edit(param_dir / "smoke.yaml", "05_statistics:\n", "02_autoencoders:\n  n_show: 2\n05_statistics:\n")
    with pytest.raises(
        params.ParameterError, match=r"smoke\.yaml, line \d+, column 1: duplicate key '02_autoencoders'"
    ):
        execute.execute(report.NOTEBOOKS / "05_statistics.py", "smoke")


def test_duplicate_key_in_a_section_is_refused(param_dir):
    edit(param_dir / "smoke.yaml", "  k_sweep: [8, 64]\n", "  k_sweep: [8, 64]\n  k_sweep: [8]\n")
    with pytest.raises(params.ParameterError, match="duplicate key 'k_sweep'"):
        params.check("smoke")


def test_key_of_another_notebook_and_unknown_section(param_dir):
    edit(param_dir / "smoke.yaml", "05_statistics:\n", "05_statistics:\n  n_show: 5\n")
    with pytest.raises(params.ParameterError, match="05_statistics.'n_show' is not declared by 05_statistics"):
        params.check("smoke")
    edit(param_dir / "smoke.yaml", "  n_show: 5\n", "")
    edit(param_dir / "smoke.yaml", "05_statistics:\n", "99_no_such_notebook:\n  n: 1\n05_statistics:\n")
    with pytest.raises(params.ParameterError, match="section '99_no_such_notebook' is not a notebook"):
        params.check("smoke")


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("  n_images: 12\n", "  n_images: twelve\n", r"all\.n_images = 'twelve' is a str; expected int"),
        ("  n_images: 12\n", "  n_images: 12.5\n", r"n_images = 12\.5 is a float; expected int"),
        (
            "{classifier_epochs: 1,",
            "{classifier_epochs: [1],",
            r"all\.model_settings\.classifier_epochs = \[1\] is a list; expected Union",
        ),
        ("ae_epochs: 1,", "ae_epochs: {mnist: one},", r"all\.model_settings\.ae_epochs = \{'mnist': 'one'\}"),
        (
            "{classifier_epochs: 1,",
            "{classifier_epochs: 0,",
            r"all\.model_settings\.classifier_epochs = 0 must be >= 1",
        ),
        (
            "{classifier_epochs: 1,",
            "{classifier_epochs: {mnist: -3},",
            r"model_settings\.classifier_epochs\.mnist = -3 must be >= 1",
        ),
        (
            "{classifier_epochs: 1,",
            "{classifier_epochs: {mnsit: 3},",
            r"model_settings\.classifier_epochs: 'mnsit' is not a data set",
        ),
        (
            "{classifier_epochs: 1,",
            "{classifier_epoch: 1,",
            r"all\.model_settings\.'classifier_epoch' is not a model setting "
            r"\(did you mean 'classifier_epochs'\?\)",
        ),
        (
            "{classifier_epochs: 1,",
            "{classifier_epochs: 1, classifier_lr: {mnist: 0.0},",
            r"all\.model_settings\.classifier_lr\.mnist = 0\.0 must be > 0",
        ),
        (
            "{classifier_epochs: 1,",
            "{classifier_epochs: 1, classifier_lr: {mnist: fast},",
            r"all\.model_settings\.classifier_lr = \{'mnist': 'fast'\} is a dict; expected Union\[float",
        ),
        (
            '    "on": {eps: 20.0, alpha: 0.3, steps: 100}\n',
            '    "on": {eps: 20.0, alpha: 0.0, steps: 100}\n',
            r"attack\.on\.alpha = 0\.0 must be > 0",
        ),
    ],
)
def test_wrong_type_or_range_names_file_and_key(param_dir, old, new, message):
    edit(param_dir / "smoke.yaml", old, new)
    with pytest.raises(params.ParameterError, match=r"^notebooks/params/smoke\.yaml: |smoke\.yaml: ") as err:
        params.check("smoke")
    assert "smoke.yaml" in str(err.value) and "\n" not in str(err.value)
    import re
    assert re.search(message, str(err.value)), str(err.value)


def test_yaml_syntax_error_names_the_file(param_dir):
    edit(param_dir / "quick.yaml", "01_classifiers:\n", "01_classifiers: [\n")
    with pytest.raises(params.ParameterError, match=r"quick\.yaml, line \d+"):
        params.check("quick")


def test_typed_parameters_cells_are_read_alike_by_papermill(tmp_path):
    """Every notebook's parameters cell is typed and commented one per line; papermill sees the same names and types
    (a comment holding "=" once made papermill skip its parameter)."""
    for path in params.notebook_paths():
        ours = params.declared(path)
        theirs = papermill.inspect_notebook(str(execute.to_ipynb(path, tmp_path / f"{path.stem}.ipynb")))
        assert list(ours) == list(theirs), path.stem
        for name, p in ours.items():
            assert p.annotation and p.comment, (path.stem, name)
            assert theirs[name]["inferred_type_name"] == p.annotation, (path.stem, name)


def test_unknown_profile_through_make_lists_the_profiles():
    out = subprocess.run(["make", "report", "PROFILE=bogus"], cwd=params.REPO, capture_output=True, text=True)
    assert out.returncode != 0 and "No rule to make target" not in out.stderr
    assert "profile must be one of paper, quick, smoke" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("old, new, message", [
    ("  datasets: [mnist, fashion_mnist, cifar10]   #", "  datasets: [mnist, fashoin_mnist, cifar10]   #",
     r"01_classifiers\.datasets = \[.*\]: 'fashoin_mnist' is not a data set \(did you mean 'fashion_mnist'\?\); "
     r"allowed: mnist, fashion_mnist, cifar10, imagenet"),
    ("  splits: [test, train]\n", "  splits: [test, trian]\n",
     r"all\.splits = \['test', 'trian'\]: 'trian' is not a split \(did you mean 'train'\?\); allowed: test, train"),
    ('    "on": {eps: 20.0, alpha: 0.3, steps: 100}\n', '    "on": {epss: 20.0, alpha: 0.3, steps: 100}\n',
     r"all\.attack\.on: 'epss' is not an attack setting \(did you mean 'eps'\?\); allowed: eps, alpha, steps, loss"),
    ('    "on": {eps: 20.0, alpha: 0.3, steps: 100}\n', '    "onn": {eps: 20.0, alpha: 0.3, steps: 100}\n',
     r"all\.attack: 'onn' is not a condition \(did you mean 'on'\?\); allowed: unconstrained, on, off"),
    ("  second_latent_dim: {mnist: 8}\n", "  second_latent_dim: {minst: 8}\n",
     r"04_random_subspace_control\.second_latent_dim: 'minst' is not a data set"),
    ("  k_sweep: [8, 64]\n", "  k_sweep: [8, 64]\n  controls: [random, gaussian]\n",
     r"controls = \['random', 'gaussian'\]: 'gaussian' is not a control subspace; allowed: coordinate, random, pca"),
    ("09_replication:\n", "09_replication:\n  tau2_method: reml\n",
     r"09_replication\.tau2_method: 'reml' is not a between-seed variance estimator; allowed: dl, pm"),
])
def test_values_outside_their_domain_are_refused_before_any_kernel(param_dir, tmp_reports, no_kernel, old, new, message,
                                                                    capsys, monkeypatch):
    import re

    from lib.reporting import pipeline

    edit(param_dir / "smoke.yaml", old, new)
    monkeypatch.setattr(pipeline, "_spawn", lambda *a: (_ for _ in ()).throw(AssertionError("a notebook was started")))
    assert pipeline.main(["make", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and "smoke.yaml: " in err
    assert re.search(message, err), err
    assert not (tmp_reports / "smoke").exists()  # nothing queued, nothing invalidated


def test_allowed_values_are_the_ones_the_lib_accepts():
    import dataclasses

    from lib.experiments import experiment, shards
    from lib.learn import data

    assert params.DATASETS is data.DATASETS and params.CONDITIONS is experiment.CONDITIONS  # one definition each
    assert params.ATTACK_KEYS == tuple(f.name for f in dataclasses.fields(shards.AttackSettings))
    for control in params.CONTROL_SUBSPACES:
        experiment.control_spec(control, 4, train_images=experiment.PCAImages("mnist", "x", None, 0, "y"))
    with pytest.raises(ValueError, match="split must be train or test"):
        experiment.AttackExperiment(None, None, "trian", 1, {})
    from lib.studies.training import mislabeled_study
    assert params.BUDGET_NAMES == (mislabeled_study.MINIMAL,)
    decl = params.declared(params.REPO / "notebooks" / "10_training_claims.py")["relabel_budgets"]
    assert "did you mean 'minimal'" in params.check_value(decl, ["minimum", 2.0])
    assert params.check_value(decl, ["minimal", 2, 10.0]) is None


def test_a_data_folder_that_does_not_exist_is_refused(tmp_path, tmp_reports, no_kernel, monkeypatch, capsys):
    """DIMPLED_DATA naming no folder: one line, before anything is queued or invalidated, no folder created;
    DIMPLED_DATA_CREATE=1 asks for a new, empty data folder."""
    from lib.reporting import fingerprint, pipeline

    missing = tmp_path / "nonexistent"
    monkeypatch.setenv("DIMPLED_DATA", str(missing))
    root = tmp_reports / "smoke"
    root.mkdir(parents=True)
    (root / "01_classifiers.html").write_text("last good page")
    fingerprint.path_of(root, "01_classifiers").write_text("{}")
    monkeypatch.setattr(pipeline, "_spawn", lambda *a: (_ for _ in ()).throw(AssertionError("a notebook was started")))
    for argv in (["make", "--profile", "smoke"], ["make", "--profile", "smoke", "--dry-run"],
                 ["run", str(report.NOTEBOOKS / "01_classifiers.py"), "--profile", "smoke", "--quiet"]):
        assert pipeline.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: DIMPLED_DATA={missing} does not exist (to start a new data folder there, set " \
                      "DIMPLED_DATA_CREATE=1)", err
    assert not missing.exists() and (root / "01_classifiers.html").read_text() == "last good page"
    assert fingerprint.path_of(root, "01_classifiers").exists() and not list(root.glob("*.state.json"))
    monkeypatch.setenv("DIMPLED_DATA_CREATE", "1")
    from lib.infra import sources

    sources.check_data_root()
    assert missing.is_dir()


# ---- every parameter's declared domain (lib.reporting.domains), walked -------------------------------------------

def _out_of_domain(p, decl):
    """Values outside `p`'s declared domain, one per clause (a wrong type for a parameter whose domain is `any`)."""
    from lib.reporting import domains

    integer = "int" in (p.annotation or type(p.default).__name__) and "float" not in (p.annotation or "")

    def shaped(v):  # a bad number in the parameter's shape: alone, in a list, or as a per-data-set value
        if isinstance(p.default, list) or "list" in (p.annotation or ""):
            return [v]
        if isinstance(p.default, dict) and p.default:
            return {next(iter(p.default)): v}
        if "dict" in (p.annotation or "") and "Union" not in (p.annotation or ""):
            return {"mnist": v}
        return v

    out = []
    for c in p.domain:
        if c.op in domains.HOLDS:
            step = 1 if integer else 0.5
            bad = {"≥": c.value - step, ">": c.value, "≤": c.value + step, "<": c.value}[c.op]
            out.append(shaped(int(bad) if integer else float(bad)))
        elif c.op == "non-empty":
            out.append({} if isinstance(p.default, dict) else [])
        elif c.op == "in":
            other = decl[c.value].default
            out.append([max(other) + 1.0])
        elif c.op == "any":
            out.append(next(v for v in ("x", 5, 2.5, [], {}) if params.check_value(p, v)))
    return out


@pytest.mark.parametrize("path", params.notebook_paths(), ids=lambda p: p.stem)
def test_every_parameter_declares_a_domain_that_holds_its_default_and_refuses_what_lies_outside(path):
    """Each parameter of the notebook: a declared domain; its own default inside it; and for each clause a value outside
    it, refused before any kernel (params.resolve, what `make report` and `python -m lib.reporting run` call first)
    with one line naming the notebook and the parameter."""
    decl = params.declared(path)
    undeclared = [name for name, p in decl.items() if p.domain is None]
    assert not undeclared, f"{path.name}: no [domain] in the comment of {', '.join(undeclared)}"
    for name, p in decl.items():
        assert params.check_value(p, p.default) is None, f"{path.name}: {name}'s default is outside its domain"
    assert params.cross_check(decl, {}) is None
    for name, p in decl.items():
        for bad in _out_of_domain(p, decl):
            with pytest.raises(params.ParameterError) as err:
                params.resolve(path.stem, "smoke", decl, {name: bad})
            assert str(err.value).startswith(f"{path.stem}: {name}") and "\n" not in str(err.value), (name, bad)


def test_the_values_the_issue_found_slipping_through_are_refused():
    """The probe's examples: each was accepted before domains were declared (some ran for 16-19 s, some changed a
    verdict: alpha 1.5)."""
    cases = {"07_isometric_autoencoder_defence": {"attack_steps": -1, "square_queries": -5, "lambdas": [],
                                                  "eps_grid": [], "verdict_eps": [4.0], "margin": -0.1},
             "08_known_manifolds": {"world_images": -1, "k": 0, "steepness": ["steep"], "world_attack": {"epss": 1.0}},
             "09_replication": {"alpha": 1.5, "max_failure_rate": 2.0, "n_seeds": 1},
             "10_training_claims": {"advtrain_steps": -1, "variants": []}}
    for nb, values in cases.items():
        decl = params.declared(params.NOTEBOOKS / f"{nb}.py")
        for name, bad in values.items():
            with pytest.raises(params.ParameterError, match=name):
                params.resolve(nb, "smoke", decl, {name: bad})
