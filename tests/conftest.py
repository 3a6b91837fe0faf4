"""Shared fixtures: an isolated model cache and report folder for every test session."""
import pytest


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIMPLED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tmp_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("DIMPLED_REPORTS", str(tmp_path / "reports"))
    return tmp_path / "reports"
