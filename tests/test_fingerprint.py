"""Which notebooks re-run, and why: by content (fingerprints), never by timestamps."""
import subprocess

import pytest

from lib.reporting import fingerprint, params, pipeline, state
from lib.reporting.report import reports_dir

NOTEBOOKS = {p.stem: p for p in params.notebook_paths()}


def record_all(profile):
    """As if every notebook had just run successfully under `profile`."""
    root = reports_dir(profile)
    for name, path in NOTEBOOKS.items():
        fingerprint.save(root, name, fingerprint.fingerprint(path, params.resolve(name, profile), root))


def stale(profile):
    return {name: why for name, why in pipeline.plan(profile).items() if why}


def fingerprints(profile):
    root = reports_dir(profile)
    return {name: fingerprint.fingerprint(path, params.resolve(name, profile), root)
            for name, path in NOTEBOOKS.items()}


@pytest.fixture(autouse=True)
def fresh_module_facts():
    """Each module's text is parsed once per process (fingerprint._read, fingerprint.code_facts): a test that fakes an
    edit by patching the hash must not leave its facts to the next."""
    fingerprint.forget()
    yield
    fingerprint.forget()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DIMPLED_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DIMPLED_OFFLINE", "1")
    (tmp_path / "data").mkdir()  # an empty data folder (one that does not exist is refused)
    return tmp_path / "data"


def test_nothing_changed_nothing_runs(tmp_reports, data_dir):
    assert set(stale("smoke")) == set(NOTEBOOKS)
    assert stale("smoke")["01_classifiers"] == ["never run"]
    record_all("smoke")
    assert stale("smoke") == {}


def test_a_data_set_becoming_available_reruns_the_notebooks_that_use_it(tmp_reports, data_dir):
    record_all("smoke")
    cifar = data_dir / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for f in fingerprint.sources.CIFAR10:
        (cifar / f).write_bytes(b"")
    why = stale("smoke")
    # smoke: 01 and 02 ask for cifar10, so do 03 and 04; 05 reads their records
    assert why["01_classifiers"] == ["cifar10 now available"] and why["03_on_off_manifold_attacks"] == [
        "cifar10 now available"
    ]
    assert why["05_statistics"] == ["03_on_off_manifold_attacks runs again", "04_random_subspace_control runs again"]
    record_all("smoke")
    (cifar / "test_batch").unlink()
    assert stale("smoke")["02_autoencoders"] == ["cifar10 no longer available"]


def test_a_notebook_reading_data_without_a_datasets_parameter_reruns_when_it_changes(tmp_reports, data_dir):
    """08 has no `datasets` parameter but reads MNIST (its third world's decoder): fingerprint.READS says so."""
    record_all("smoke")
    mnist = data_dir / "MNIST" / "raw"
    mnist.mkdir(parents=True)
    for f in fingerprint.sources.IDX:
        (mnist / f).write_bytes(b"")
    why = stale("smoke")
    assert "08_known_manifolds" in why and why["08_known_manifolds"] == why["01_classifiers"]


def test_only_the_notebooks_that_ask_for_a_data_set_rerun(tmp_reports, data_dir, monkeypatch):
    monkeypatch.setattr(fingerprint.sources, "DEBIAN_FASHION_MNIST", data_dir / "debian-fashion-mnist")
    record_all("smoke")
    (data_dir / "debian-fashion-mnist").mkdir(parents=True)  # Debian's dataset-fashion-mnist installed
    before = stale("smoke")
    # smoke's 03 and 04 attack mnist and cifar10 only: fashion_mnist is not theirs (nor 05's)
    assert set(before) == {"01_classifiers", "02_autoencoders"}
    assert before["02_autoencoders"] == ["fashion_mnist now available"]


def test_changed_lib_module_reruns_its_importers_and_says_which(tmp_reports, data_dir, monkeypatch):
    record_all("smoke")
    real = fingerprint.sha

    attacks = fingerprint.normalised(fingerprint._module_file("lib.boundary.attacks").read_text())

    def edited(data):  # as if the code of lib/boundary/attacks.py had been edited
        return "edited" if data == attacks else real(data)

    monkeypatch.setattr(fingerprint, "sha", edited)
    fingerprint.forget()  # forget the unedited hashes of this process, and do not read them back from the store on
    monkeypatch.setattr(fingerprint, "load_facts", lambda path: None)  # disk: this edit leaves the text as it was
    why = stale("smoke")
    assert (
        set(why)
        == {
            "03_on_off_manifold_attacks",
            "04_random_subspace_control",
            "05_statistics",
            "06_curvature",
            "07_isometric_autoencoder_defence",  # 07 imports lib.studies.defence.defence -> lib.boundary.attacks
            "08_known_manifolds",  # 08 attacks its worlds with lib.experiments.shards -> lib.boundary.attacks
            "09_replication",  # 09: lib.experiments.experiment -> lib.experiments.shards -> lib.boundary.attacks
            "10_training_claims",
            "11_model_quality",  # 11: lib.studies.quality.quality -> lib.studies.manifold.replication -> ...
        }
    )  # 10 imports lib.studies.training.mislabeled and lib.experiments.experiment, which import lib.boundary.attacks
    assert why["03_on_off_manifold_attacks"] == ["lib/boundary/attacks.py changed"]


def test_torch_version_and_upstream_records_are_parts(tmp_reports, data_dir, monkeypatch):
    record_all("smoke")
    results = reports_dir("smoke") / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "03_records.csv").write_text("a,b\n1,2\n")
    assert list(stale("smoke")) == ["05_statistics"]
    assert stale("smoke")["05_statistics"] == ["results/03_records.csv now present"]
    record_all("smoke")
    (results / "03_records.csv").write_text("a,b\n1,3\n")
    assert stale("smoke") == {"05_statistics": ["results/03_records.csv changed"]}
    record_all("smoke")
    monkeypatch.setattr(fingerprint, "_versions", lambda: ("9.9.9", fingerprint.platform.python_version()))
    why = stale("smoke")
    assert set(why) == set(NOTEBOOKS) and why["01_classifiers"] == [
        f"torch {fingerprint.metadata.version('torch')} -> 9.9.9"
    ]


def test_reasons_name_the_parameter():
    old = {"digest": "a", "parts": {"params": {"n_images": 12}, "lib": {}, "source": "s", "templates": {},
                                    "torch": "t", "python": "p", "reports": "r"}}
    new = {"digest": "b", "parts": {**old["parts"], "params": {"n_images": 20}}}
    assert fingerprint.reasons(old, new) == ["parameter n_images: 12 -> 20"]


def test_lib_closure_follows_imports_transitively():
    closure = {p.name for p in fingerprint.lib_closure(NOTEBOOKS["03_on_off_manifold_attacks"])}
    assert {"attacks.py", "manifold.py", "experiment.py", "models.py", "cache.py", "sources.py"} <= closure
    assert "pipeline.py" not in closure and "index.py" not in closure  # the report machinery is not a result's input
    assert "attacks.py" not in {p.name for p in fingerprint.lib_closure(NOTEBOOKS["01_classifiers"])}
    relative = fingerprint.imported_lib_modules(
        "from . import files\nfrom .runtime import notify", module="lib.infra.cache"
    )
    assert {fingerprint._module_file("lib.infra.files"), fingerprint._module_file("lib.infra.runtime")} <= relative
    assert all(f.is_relative_to(fingerprint.LIB) for f in relative)


def test_failed_or_interrupted_run_runs_again(tmp_reports, data_dir):
    record_all("smoke")
    root = reports_dir("smoke")
    fingerprint.path_of(root, "02_autoencoders").unlink()
    state.mark(root, "02_autoencoders", "failed", error="cell [3] raised ValueError: boom")
    assert stale("smoke")["02_autoencoders"] == ["last run failed (cell [3] raised ValueError: boom)"]
    state.mark(root, "02_autoencoders", "running")
    import json
    path = state.path_of(root, "02_autoencoders")
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": 2 ** 22 + 12345}))  # a process that is gone
    assert stale("smoke")["02_autoencoders"] == ["last run was interrupted"]


def test_make_report_honours_dimpled_reports(tmp_reports, data_dir):
    """`make report` uses $DIMPLED_REPORTS (even with reports/<profile> present) and prints that path."""
    record_all("smoke")
    out = subprocess.run(["make", "report", "PROFILE=smoke", "REPORT_ARGS=--dry-run"], cwd=params.REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"Report: {tmp_reports / 'smoke' / 'index.html'}" in out.stdout and "Up to date" in out.stdout
    out = subprocess.run(["make", "report", "PROFILE=smoke"], cwd=params.REPO, capture_output=True, text=True)
    assert "Up to date" in out.stderr and (tmp_reports / "smoke" / "index.html").exists()


def checkout_copy(dest):
    """The repository's files (tracked and new, not ignored ones: no reports, data or .venv) copied to `dest`."""
    import shutil

    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=params.REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, names):
        if (params.REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(params.REPO / name, dest / name)
    return dest


def in_checkout(repo, code, *args):
    """Run python `code` with `repo`'s lib, as a user of that checkout would (its own reports/ and data/)."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DIMPLED_REPORTS", "DIMPLED_DATA", "DIMPLED_CACHE")}
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=repo, capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(repo), "DIMPLED_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    return out.stdout


RECORD = """
from lib.reporting import fingerprint, params
from lib.reporting.report import reports_dir
root = reports_dir("smoke")
for path in params.notebook_paths():
    fp = fingerprint.fingerprint(path, params.resolve(path.stem, "smoke"), root)
    fingerprint.save(root, path.stem, fp)
    print(path.stem, fp["digest"])
"""


def test_a_moved_clone_runs_nothing(tmp_path):
    """Same content elsewhere: the same fingerprints, so `make report` in the moved checkout is up to date."""
    import shutil

    first = checkout_copy(tmp_path / "first")
    recorded = in_checkout(first, RECORD)
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(first, moved)  # with its reports/smoke fingerprints
    shutil.rmtree(first)
    assert in_checkout(moved, RECORD) == recorded
    dry = in_checkout(
        moved, "from lib.reporting import pipeline; pipeline.main(['make', '--profile', 'smoke', '--dry-run'])"
    )
    assert dry.startswith("Up to date: nothing to run."), dry


def test_a_comment_only_lib_edit_keeps_every_fingerprint(tmp_path):
    """lib code enters a fingerprint as the cache keys see it (no comments, no docstrings): editing them re-runs
    nothing."""
    repo = checkout_copy(tmp_path / "repo")
    before = in_checkout(repo, RECORD)
    attacks = repo / "lib" / "boundary" / "attacks.py"
    text = attacks.read_text()
    head, _, rest = text.partition('"""\n')  # after the module docstring's first line
    attacks.write_text(f'{head}"""\n# a comment added\n{rest}'.replace('"""', '"""Edited. ', 1) + "\n# and one more\n")
    assert attacks.read_text() != text
    assert in_checkout(repo, RECORD) == before
    attacks.write_text(text + "\nEDITED = 1\n")  # a code edit does re-run its importers
    after = dict(line.split() for line in in_checkout(repo, RECORD).splitlines())
    changed = {
        name for name, digest in dict(line.split() for line in before.splitlines()).items() if after[name] != digest
    }
    assert changed == {"03_on_off_manifold_attacks", "04_random_subspace_control", "06_curvature",
                       "07_isometric_autoencoder_defence", "08_known_manifolds",
                       "09_replication", "10_training_claims", "11_model_quality"}  # (05 re-runs as their reader)


def test_module_facts_are_stored_and_read_back_instead_of_parsing_again(tmp_reports, data_dir, monkeypatch):
    """A warm `make report` reads each module's code hash and imports from reports/.code-facts.json; what it reads
    is what parsing gives, so every fingerprint is the same."""
    before = {n: d["digest"] for n, d in fingerprints("smoke").items()}
    store = tmp_reports / ".code-facts.json"
    pipeline.plan("smoke")
    assert store.exists()
    fingerprint.forget()

    def no_parsing(text):
        raise AssertionError("parsed again although its facts were stored")

    monkeypatch.setattr(fingerprint, "normalised", no_parsing)
    pipeline.plan("smoke")
    assert {n: d["digest"] for n, d in fingerprints("smoke").items()} == before


def test_module_facts_follow_the_text_and_survive_a_damaged_store(tmp_path):
    a = "import lib.boundary.attacks\nx = 1\n"
    b = "from lib.geometry import manifold\nx = 1  # a comment\n"
    ca, cb = fingerprint.code_facts(a, "lib.m"), fingerprint.code_facts(b, "lib.m")
    assert ca[1] == ["lib.boundary.attacks"] and cb[1] == ["lib.geometry", "lib.geometry.manifold"]
    assert ca[0] == fingerprint.sha(fingerprint.normalised(a)) != cb[0]
    assert fingerprint.files_of(cb[1]) == fingerprint.imported_lib_modules(b, "lib.m")
    store = tmp_path / "facts.json"
    fingerprint.save_facts(store)
    fingerprint.forget()
    fingerprint.load_facts(store)
    assert fingerprint.code_facts(a, "lib.m") == ca
    store.write_text("{not json")
    fingerprint.forget()
    fingerprint.load_facts(store)  # ignored: computed again
    assert fingerprint.code_facts(b, "lib.m") == cb
