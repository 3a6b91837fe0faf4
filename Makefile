# dimpled: `make report` and `make test` are all a user needs; each target installs what it needs.
PROFILE ?= quick
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.py))
OUT := reports/$(PROFILE)
PAGES := $(NOTEBOOKS:notebooks/%.py=$(OUT)/%.html)
LIB := $(wildcard lib/*.py lib/templates/*/*)

.PHONY: install report test lab bench clean clean-cache
.DEFAULT_GOAL := report

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3
	@test -d /usr/share/datasets/fashion-mnist || echo "NOTE: Debian's dataset-fashion-mnist is not installed: Fashion-MNIST needs it offline (sudo apt-get install dataset-fashion-mnist)."
	touch $@

# One page per notebook, re-executed only when the notebook, its parameters or lib/ changed;
# models come from the cache (data/cache). Notebooks are independent: `make -j2 report` runs two at once.
report: $(OUT)/index.html
	@echo "Report: $(OUT)/index.html"

$(OUT)/index.html: $(PAGES) lib/report.py | $(STAMP)
	$(PY) -m lib.report index --profile $(PROFILE)

$(OUT)/%.html: notebooks/%.py notebooks/params/$(PROFILE).yaml $(LIB) | $(STAMP)
	$(PY) -m lib.report run $< --profile $(PROFILE)

# Notebook 05 reads the per-image records of 03 and 04.
$(OUT)/05_statistics.html: $(OUT)/03_on_off_manifold_attacks.html $(OUT)/04_random_subspace_control.html

test: $(STAMP)
	$(PY) -m pytest

lab: $(STAMP)
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install -e ".[lab]"
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

bench: $(STAMP)
	@for f in $(sort $(wildcard bench/bench_*.py)); do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf reports

clean-cache:
	rm -rf data/cache
