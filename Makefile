# Two commands on a fresh machine: `make run` (the demo job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DATA ?= data/demo-dataset
FASHION_DATA ?= data/fashion-mnist
FASHION_IDX ?= /usr/share/datasets/fashion-mnist

# Keep tools offline, quiet, and their caches inside the project.
export KERAS_HOME := $(CURDIR)/.home/keras
export MPLCONFIGDIR := $(CURDIR)/.home/matplotlib
export TF_CPP_MIN_LOG_LEVEL := 2
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export GX_ANALYTICS_ENABLED := False
export AIRFLOW__CORE__LOAD_EXAMPLES := False
# A self-contained Airflow: SQLite metadata DB, DAGs and plugins of this checkout.
export AIRFLOW_HOME := $(CURDIR)/.home/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export ECT_HOME := $(CURDIR)

.PHONY: venv airflow-db run test clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(DEMO_DATA):
	$(BIN)/ect make-dataset $(DEMO_DATA) --images 200 --size 32

# 2,000 Fashion-MNIST pullovers and coats at 32x32 (the `fashion` profile's dataset), from the IDX files of Debian's
# dataset-fashion-mnist; without them ect says to `apt-get install dataset-fashion-mnist` (or set FASHION_IDX=DIR).
$(FASHION_DATA): | venv
	$(BIN)/ect make-dataset $(FASHION_DATA) --source fashion-mnist --idx-dir $(FASHION_IDX) --images 2000 --size 32

# Airflow's metadata DB migrated and one pool per GPU host (re-run after changing environments.yaml).
airflow-db: venv
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate
	$(BIN)/ect pools > $(AIRFLOW_HOME)/pools.json
	$(BIN)/airflow pools import $(AIRFLOW_HOME)/pools.json

# The main job on the embedded default: a run of the ect_local DAG with the demo profile on the
# synthetic dataset, on CPU, with the process runner and SQLite.
run: venv $(DEMO_DATA) airflow-db
	$(BIN)/airflow dags reserialize
	$(BIN)/airflow dags test ect_local --conf '{"profile": "demo"}'
	@$(BIN)/python -c "from ect.config import load_config; c = load_config(profile='demo'); \
		print('processed dataset:', c.path('METRICS_DIR') / 'processed' / 'runs.parquet'); \
		print('validation summary:', c.path('METRICS_DIR') / 'validation' / 'summary.txt'); \
		print('report:', c.path('OUTPUT_DIR') / 'local' / 'report.html')"

# pyproject.toml leaves out the tests marked docker, browser, celery and pushgateway (they need a Docker engine and
# Debian packages); .ci/run installs those and runs them too: PYTEST_ARGS="-m ''".
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .home .pytest_cache
