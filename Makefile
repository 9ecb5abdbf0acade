# Two commands on a fresh machine: `make run` (the demo job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DATA ?= data/demo-dataset

# Keep tools offline, quiet, and their caches inside the project.
export KERAS_HOME := $(CURDIR)/.home/keras
export MPLCONFIGDIR := $(CURDIR)/.home/matplotlib
export TF_CPP_MIN_LOG_LEVEL := 2
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export GX_ANALYTICS_ENABLED := False
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: venv run test clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(DEMO_DATA):
	$(BIN)/ect make-dataset $(DEMO_DATA) --images 200 --size 32

# The main job on the embedded default: the demo profile on the synthetic dataset, on CPU.
run: venv $(DEMO_DATA)
	$(BIN)/ect profile local --profile demo
	@echo "raw run folders: data/metrics/raw/local/"

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .home .pytest_cache
