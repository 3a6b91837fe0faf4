"""Shared fixtures: one thread for torch, an isolated model cache and report folder."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The tests' tensors are tiny: intra-op threads gain nothing, and on a busy 2-core machine they spin
    (10x slower). Notebook executions run in their own kernels and keep torch's default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIMPLED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tmp_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("DIMPLED_REPORTS", str(tmp_path / "reports"))
    return tmp_path / "reports"
