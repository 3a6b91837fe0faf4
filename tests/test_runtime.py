"""Each kernel's torch threads follow the cores it can have: an equal share when notebooks run side by side."""
import subprocess

import torch

from lib.infra import runtime
from lib.reporting import pipeline


def test_plain_make_report_runs_as_many_notebooks_as_cores_omp_and_memory_allow(monkeypatch):
    from lib.infra import machine

    monkeypatch.setattr(machine, "cores", lambda: 4)
    gib = 2 ** 30
    assert machine.auto_jobs({}, memory=64 * gib) == 4
    assert machine.auto_jobs({"OMP_NUM_THREADS": "2"}, memory=64 * gib) == 2  # the user's cap on the cores
    assert machine.auto_jobs({"OMP_NUM_THREADS": "x"}, memory=64 * gib) == 4  # not a number: no cap
    assert machine.auto_jobs({}, memory=2 * machine.KERNEL_MEMORY) == 2  # memory for two kernels
    assert machine.auto_jobs({}, memory=gib) == 1
    out = subprocess.run(["make", "-n", "report"], cwd=pipeline.params.REPO, capture_output=True, text=True).stdout
    assert "-j auto" in out  # no -j: the runner decides
    for flags, jobs in ((["-j1"], "-j 1"), (["-j2"], "-j 2"), (["JOBS=1"], "-j 1")):
        out = subprocess.run(["make", "-n", *flags, "report"], cwd=pipeline.params.REPO, capture_output=True,
                             text=True).stdout
        assert jobs in out, flags


def test_threads_share_the_cores_between_parallel_notebooks(monkeypatch):
    monkeypatch.setattr(runtime, "cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.threads_for(1) == 2 and runtime.threads_for(2) == 1 and runtime.threads_for(3) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's cap wins over the share
    assert runtime.threads_for(1) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv(runtime.JOBS_ENV, "2")
    assert runtime.threads_for() == 1
    before = torch.get_num_threads()
    try:
        runtime.start("x", "smoke", 0, "cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_each_spawned_notebook_is_told_how_many_run_at_once(monkeypatch, tmp_path):
    seen = {}

    def fake_popen(cmd, **kwargs):
        seen.update(kwargs["env"])
        return "proc"
    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    path = tmp_path / "03_x.py"
    proc, log = pipeline._spawn(path, "smoke", tmp_path, jobs=2)
    log.close()
    assert proc == "proc" and seen[runtime.JOBS_ENV] == "2"
