# The two commands of the README: `make course` (the main job) and `make test`.
# Each creates or refreshes the virtual environment in .venv first, so both work on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PRESET ?=
PYTEST_ARGS ?=

.PHONY: course test lab env clean-env

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (macos_lite)" >/dev/null
	@touch $(STAMP)

env: $(STAMP)  ## create/refresh .venv only

course: $(STAMP)  ## run the whole course headless into runs/<timestamp>/
	$(BIN)/macos-lite course $(if $(PRESET),--preset $(PRESET),)

test: $(STAMP)  ## the test suite: unit, real-data, notebooks (papermill), then nbval on the notebooks
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@tmp=$$(mktemp -d); MACOS_LITE_PRESET=smoke MACOS_LITE_RUNS=$$tmp MPLBACKEND=Agg \
	  $(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout 600 --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  -p no:cacheprovider -o addopts="" notebooks/; status=$$?; rm -rf $$tmp; exit $$status

# Learners work in student copies (no solutions): made or refreshed from notebooks/ each time, never replacing a
# notebook edited there (its new version goes beside it as NAME.new.ipynb). Teachers: `jupyter lab notebooks/`.
lab: $(STAMP)  ## student copies of the notebooks in student/, then JupyterLab on them
	$(BIN)/macos-lite assign notebooks/ --out student/
	$(BIN)/jupyter lab student/

clean-env:
	rm -rf $(VENV)
