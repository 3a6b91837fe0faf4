"""A failed or interrupted notebook shows as such in the index at once; the lab opens .py files as notebooks."""
import json
import re
import subprocess

import papermill
import pytest

from lib.infra import runtime
from lib.reporting import execute, fingerprint, params, progress, report, state


class CellError(Exception):
    ename, evalue, exec_count = "ValueError", "n_images must be positive\nmore detail", 4


def ok_run(profile):
    run = runtime.Run("02_autoencoders", profile, 0, runtime.pick_device("cpu"))
    report.write_results(run, "02 · Autoencoders", [report.headline("mnist test MSE", 0.01)])


@pytest.fixture
def fake_papermill(monkeypatch, tmp_reports):
    """papermill without a kernel: writes the notebook (and results), or fails like a cell would."""
    calls = {"fail": None}

    def run(source, executed, **kwargs):
        root = tmp_reports / "smoke"
        assert state.status(root, "02_autoencoders")[0] == "running"  # marked before the kernel starts
        assert "running" in (root / "index.html").read_text()
        import shutil
        shutil.copy(source, executed)
        if calls["fail"]:
            raise calls["fail"]
        ok_run("smoke")

    monkeypatch.setattr(papermill, "execute_notebook", run)
    monkeypatch.setattr(execute, "render_html", lambda nb, profile, out: (out.write_text("page"), out)[1])
    return calls


def test_failed_notebook_is_marked_failed_in_the_index_at_once(fake_papermill, tmp_reports):
    root = tmp_reports / "smoke"
    path = report.NOTEBOOKS / "02_autoencoders.py"
    execute.execute(path, "smoke")
    assert state.status(root, "02_autoencoders")[0] == "ok" and fingerprint.load(root, "02_autoencoders")
    assert "mnist test MSE" in (root / "verdicts.html").read_text()  # the headline figures: beside the verdicts
    fake_papermill["fail"] = CellError("boom")
    with pytest.raises(CellError):
        execute.execute(path, "smoke")
    for page in ((root / "index.html").read_text(), (root / "verdicts.html").read_text()):
        row = re.search(r"<tr><td>.*?02_autoencoders.*?</tr>", page, re.S).group(0)
        assert "failed" in row and "cell [4] raised ValueError: n_images must be positive" in row
        assert "mnist test MSE" not in page  # the previous run's figures are gone
    assert fingerprint.load(root, "02_autoencoders") is None and not (root / "02_autoencoders.html").exists()
    assert (root / "02_autoencoders.failed.html").exists() and 'href="02_autoencoders.failed.html"' in row


def test_interrupted_notebook_is_marked_interrupted(fake_papermill, tmp_reports):
    fake_papermill["fail"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        execute.execute(report.NOTEBOOKS / "02_autoencoders.py", "smoke")
    assert state.status(tmp_reports / "smoke", "02_autoencoders")[0] == "interrupted"
    assert "interrupted" in (tmp_reports / "smoke" / "index.html").read_text()


def test_a_kept_run_whose_cause_was_undone_reads_ok_again(fake_papermill, tmp_reports, monkeypatch):
    """A run stopped before computing (Ctrl-C) put the last good run back ("last good run shown: ...") and left a failed
    page; once the edit that made it stale is undone, `make` finds it up to date: the mark and the page must go."""
    from lib.reporting import pipeline

    root, name = tmp_reports / "smoke", "02_autoencoders"
    execute.execute(report.NOTEBOOKS / f"{name}.py", "smoke")
    execute.invalidate(root, name)
    (root / f"{name}.failed.html").write_text("traceback")
    assert execute.restore(root, name, "not started: stopped by Ctrl-C (the last good run is kept)")
    assert "last good run shown" in state.status(root, name)[1]
    monkeypatch.setattr(pipeline, "plan", lambda profile: {n.stem: [] for n in params.notebook_paths()})
    assert pipeline.make("smoke", 1) == 0
    assert state.status(root, name) == ("ok", "") and not (root / f"{name}.failed.html").exists()
    assert "last good run shown" not in (root / "index.html").read_text()


def test_run_prints_one_line_not_a_traceback(fake_papermill, tmp_reports, capsys):
    from lib.reporting import pipeline

    fake_papermill["fail"] = CellError("boom")
    assert pipeline.main(["run", str(report.NOTEBOOKS / "02_autoencoders.py"), "--profile", "smoke", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["02_autoencoders failed: cell [4] raised ValueError: n_images must be positive (traceback: "
                   f"{tmp_reports / 'smoke' / '02_autoencoders.failed.html'})"]


def test_progress_shows_cells_bars_and_warnings(tmp_path):
    import io

    log = tmp_path / "03.progress.log"
    log.write_text("\n[cell 2/9]\n\rtrain: 10%|# | 1/10\rtrain: 20%|## | 2/10")
    out = io.StringIO()
    live = progress.Live(out)
    live.add("03", log)
    live.poll()
    with open(log, "a") as f:
        f.write("\n\n[warning] cache entry x.pt is damaged; rebuilding it\n[detail] x.pt: BadZipFile: ...\n"
                "[cell 3/9]\n")
    live.poll()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("03 cell 2/9 0s | train: 20%|## | 2/10")
    assert "03: warning: cache entry x.pt is damaged; rebuilding it" in lines and lines[-1].startswith("03 cell 3/9")
    assert not any("BadZipFile" in line for line in lines)  # the detail stays in the log


def test_lab_settings_make_jupytext_the_default_viewer(tmp_path):
    """What `make lab` writes into the environment: the recipe's own commands, run against a scratch venv."""
    dry = subprocess.run(["make", "-n", "lab", f"VENV={tmp_path}/venv"], cwd=params.REPO,
                         capture_output=True, text=True, check=True).stdout
    install = next(line for line in dry.splitlines() if "overrides.json" in line and line.startswith("mkdir"))
    subprocess.run(install, shell=True, cwd=params.REPO, check=True)
    settings = json.loads((tmp_path / "venv/share/jupyter/lab/settings/overrides.json").read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"] == {"python": "Jupytext Notebook"}
    assert "--allow-root" in dry and "--notebook-dir=notebooks" in dry
    extra = subprocess.run(["make", "-n", "lab", f"VENV={tmp_path}/venv", "LAB_ARGS=--port 8899 --no-browser"],
                           cwd=params.REPO, capture_output=True, text=True, check=True).stdout
    assert "--port 8899 --no-browser" in extra


def test_a_run_that_stops_before_computing_keeps_the_last_good_pages(fake_papermill, tmp_reports):
    """The kernel never started: the last good run's page, figures and fingerprint stay, and the index says why."""
    root = tmp_reports / "smoke"
    path = report.NOTEBOOKS / "02_autoencoders.py"
    execute.execute(path, "smoke")
    (root / "02_autoencoders.html").write_text("last good page")
    recorded = fingerprint.load(root, "02_autoencoders")
    fake_papermill["fail"] = RuntimeError("Kernel died before replying to kernel_info")
    with pytest.raises(RuntimeError):
        execute.execute(path, "smoke")
    assert (root / "02_autoencoders.html").read_text() == "last good page"
    assert (
        fingerprint.load(root, "02_autoencoders") == recorded and not (root / execute.KEPT / "02_autoencoders").exists()
    )
    status, detail = state.status(root, "02_autoencoders")
    assert status == "ok" and "stopped before computing anything (RuntimeError: Kernel died" in detail
    page = (root / "verdicts.html").read_text()
    assert "mnist test MSE" in page and "last good run shown" in page and "last good run shown" in (
        root / "index.html").read_text()


def test_a_notebook_not_run_because_its_upstream_failed_keeps_its_last_good_pages(tmp_reports, monkeypatch):
    """`make report`: 03 fails, so 05 is not run; 05's last good run stays in the report."""
    from lib.reporting import pipeline

    root = tmp_reports / "smoke"
    root.mkdir(parents=True)
    monkeypatch.setenv("DIMPLED_OFFLINE", "1")
    for name in ("03_on_off_manifold_attacks", "05_statistics"):
        (root / f"{name}.html").write_text(f"last good {name}")
        run = runtime.Run(name, "smoke", 0, runtime.pick_device("cpu"))
        report.write_results(run, name, [report.headline(f"{name} figure", 1.0)])
        fingerprint.path_of(root, name).write_text('{"digest": "old", "parts": {}}')
    others = [p.stem for p in params.notebook_paths() if p.stem not in ("03_on_off_manifold_attacks", "05_statistics")]
    for name in others:  # up to date
        fingerprint.save(root, name, fingerprint.fingerprint(params.NOTEBOOKS / f"{name}.py",
                                                             params.resolve(name, "smoke"), root))

    class Failed:
        returncode = 1

        def poll(self):
            return 1

    def spawn(path, profile, root, jobs=1):
        assert path.stem == "03_on_off_manifold_attacks", path.stem
        (root / f"{path.stem}.run.log").write_text("03_on_off_manifold_attacks failed: cell [5] raised ValueError: x\n")
        state.mark(root, path.stem, "failed", error="cell [5] raised ValueError: x")
        return Failed(), open(root / f"{path.stem}.run.log")

    monkeypatch.setattr(pipeline, "_spawn", spawn)
    import io
    assert pipeline.make("smoke", out=io.StringIO()) == 1
    assert (root / "05_statistics.html").read_text() == "last good 05_statistics"
    assert (root / "results" / "05_statistics.json").exists() and fingerprint.load(root, "05_statistics")
    assert state.status(root, "05_statistics")[0] == "ok"
    assert "05_statistics figure" in (root / "verdicts.html").read_text()
    assert state.status(root, "03_on_off_manifold_attacks")[0] == "failed"


def test_notebooks_name_the_kernel_the_lab_starts():
    """JupyterLab writes the running kernel's spec into the notebook's metadata when it starts one: a header that
    differs from the installed python3 kernelspec (ipykernel's display name "Python 3 (ipykernel)") marked every
    notebook modified as soon as it was opened."""
    import jupytext
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    for path in params.notebook_paths():
        assert jupytext.read(path).metadata["kernelspec"] == {"name": "python3", "display_name": spec.display_name,
                                                              "language": spec.language}, path.name


def test_notebooks_that_load_others_models_start_after_their_trainers(tmp_reports, monkeypatch):
    """`make -j2`: 01 and 02 start first; while 02 trains its autoencoders, the free core takes notebooks that train
    their own models (08, 09), never one that would sit on 02's cache lock (03, 04, 06, 07, 11); 10 waits for 09 too."""
    from lib.reporting import pipeline

    root = tmp_reports / "smoke"
    root.mkdir(parents=True)
    names = [p.stem for p in params.notebook_paths()]
    monkeypatch.setattr(pipeline, "plan", lambda profile: {n: ["stale"] for n in names})
    monkeypatch.setattr(pipeline.time, "sleep", lambda s: None)
    polls = {"02_autoencoders": 40}  # 02 runs longest, as on a cold run; the others finish after 3 polls
    started, running = [], set()

    class Proc:
        returncode = 0

        def __init__(self, name):
            self.name, self.left = name, polls.get(name, 3)

        def poll(self):
            self.left -= 1
            if self.left > 0:
                return None
            running.discard(self.name)
            return 0

    def spawn(path, profile, root, jobs=1):
        started.append((path.stem, frozenset(running)))
        running.add(path.stem)
        return Proc(path.stem), open(root / f"{path.stem}.run.log", "w")

    monkeypatch.setattr(pipeline, "_spawn", spawn)
    import io
    assert pipeline.make("smoke", 2, out=io.StringIO()) == 0
    order = [n for n, _ in started]
    assert sorted(order) == sorted(names) and order[:2] == ["01_classifiers", "02_autoencoders"]
    for name, others in started:
        assert not set(pipeline.MODELS_FROM.get(name, ())) & others, (name, others)
    assert order.index("09_replication") < order.index("03_on_off_manifold_attacks")
    assert order.index("09_replication") < order.index("10_training_claims")
    assert any("02_autoencoders" in others for name, others in started if name == "09_replication")
