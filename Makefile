# Two commands do all set-up on a fresh machine (Python 3.11 and Java 17):
#   make train   train on the bundled penguins data, tracked in a local MLflow store
#   make test    run the test suite
PYTHON ?= python3.11
VENV := .venv
TOOLS_VENV := .venv-tools
RUNTIME_VENV := .venv-runtime
BIN := $(VENV)/bin
RUNTIME_CONSTRAINTS := tests/data/synapse-runtime/constraints.txt
# Python caches what it compiles (__pycache__/, ignored by git) even where the environment asks it not
# to: without the cache every test run and every job process the tests start compiles the package
# and the tests again (make test-fast: 14 s instead of 9).
unexport PYTHONDONTWRITEBYTECODE
# What runs again on the Synapse runtime's own package versions (mlflow-skinny 2.18, azureml-mlflow
# 1.60...): the end-to-end tests and the Azure ML ones (the whole cycle of train, gate, resume, score
# and report included). Tests of the embedded sqlite store are left out: the runtime has no Alembic
# (a pool always tracks to a server or workspace); what a pool says instead is tested here. The same
# cycle also runs against an mlflow server in its default configuration (artifacts proxied), the
# Delta tests run there with the runtime's Delta release, and the Python API's (it puts back MLflow's
# global URIs, whose internals differ between MLflow 2.18 and 3), and a job throttled by the workspace
# (MLflow 2.18's HTTP layer under the job's retry policy), and drift in a scoring pass (the Delta tests
# hold incremental scoring from a change feed).
RUNTIME_TESTS := tests/test_aml_fidelity.py tests/test_aml_cycle.py tests/test_auth.py tests/test_train_e2e.py \
	tests/test_default_mlflow_server.py tests/test_database_store_without_alembic.py tests/test_delta.py tests/test_api.py \
	tests/test_aml.py::test_a_job_waits_out_a_throttled_workspace_as_retry_after_asks \
	tests/test_scoring.py::test_a_shifted_feature_drifts_the_run_is_tagged_and_fail_on_drift_exits_7_after_writing

.PHONY: delta-jars jvm-archives train test test-suite test-runtime-beside test-fast test-runtime test-aml-live aml-double soak bench bench-score bench-score-delta bench-score-drift bench-score-incremental bench-search check clean

# The stamp files make the environments rebuild only when their pins change.
$(VENV)/.installed: requirements-dev.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(RUNTIME_VENV)/.installed: requirements-runtime.txt $(RUNTIME_CONSTRAINTS) setup.cfg pyproject.toml
	test -x $(RUNTIME_VENV)/bin/python || $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(RUNTIME_VENV)/bin/python -m pip install --quiet -c $(RUNTIME_CONSTRAINTS) -r requirements-runtime.txt
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

$(TOOLS_VENV)/.installed: tools-requirements.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r tools-requirements.txt
	touch $@

# The Delta Lake jars a local Spark session needs (a Synapse pool has them), fetched by Spark's own Ivy
# resolution (or mvn) and checked against the sha256 pinned in synapse_ml_track/spark/delta.py; run every
# time (a checksum of what is there when nothing is missing), so a deleted or altered jar is replaced.
delta-jars: $(VENV)/.installed
	$(BIN)/python tools/fetch_delta_jars.py .jars

# The class archive every JVM of the tests maps (tests/jvm_archive.py), one per environment: written
# once, in under a minute, when missing; the tests run without it if it cannot be written.
jvm-archives: $(VENV)/.installed $(RUNTIME_VENV)/.installed delta-jars
	$(BIN)/python tests/jvm_archive.py
	$(RUNTIME_VENV)/bin/python tests/jvm_archive.py

train: $(VENV)/.installed delta-jars
	$(BIN)/synapse-ml-track train$(if $(ARGS), $(ARGS))

# Both cores, a whole test file per worker (module fixtures are built once), the files that run for
# minutes handed out first (tests/conftest.py): the suite waits on servers, retries and JVM starts
# as much as it computes, so one worker's waits are the other's turn.
WORKERS := -n 2 --dist loadfile --no-loadscope-reorder
# The slowest tests, printed at the end of each run: where the suite's minutes go (docs/development.md).
SLOWEST := --durations=25

# Style first (ruff), then the whole suite in the pinned local environment and, beside it on one worker,
# the end-to-end and Azure ML tests again on the Synapse runtime's versions: the whole suite leaves about a
# tenth of the two cores idle (servers starting, Retry-After, JVM starts). Measured from a fresh clone on
# 2026-12-07, one run each: 25:02 this way, against 21:11 + 6:42 = 27:53 one after the other. Its output
# goes to .test-runtime.log, printed when the whole suite ends (at once if it fails).
test: $(VENV)/.installed $(TOOLS_VENV)/.installed $(RUNTIME_VENV)/.installed delta-jars jvm-archives
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory -j2 test-suite test-runtime-beside
	@cat $(RUNTIME_LOG)

test-suite: $(VENV)/.installed $(TOOLS_VENV)/.installed delta-jars jvm-archives
	SMT_TOOLS_BIN=$(CURDIR)/$(TOOLS_VENV)/bin $(BIN)/python -m pytest $(WORKERS) $(SLOWEST) $(PYTEST_ARGS)

RUNTIME_LOG := .test-runtime.log
test-runtime-beside: $(VENV)/.installed $(RUNTIME_VENV)/.installed delta-jars jvm-archives
	@echo "the runtime's versions: running beside the whole suite, output in $(RUNTIME_LOG)"
	@$(MAKE) --no-print-directory test-runtime RUNTIME_WORKERS="-n 1" > $(RUNTIME_LOG) 2>&1 \
		|| { cat $(RUNTIME_LOG); exit 1; }

# The unit layer alone: pure logic, no Spark session, no server; seconds.
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

RUNTIME_WORKERS = $(WORKERS)
test-runtime: $(VENV)/.installed $(RUNTIME_VENV)/.installed delta-jars jvm-archives
	SMT_MLFLOW_SERVER=$(CURDIR)/$(BIN)/mlflow $(RUNTIME_VENV)/bin/python -m pytest $(RUNTIME_WORKERS) $(SLOWEST) \
		-m "not live_aml and not embedded_store" $(RUNTIME_TESTS) $(PYTEST_ARGS)

# The job cycle against the real workspace named in the environment (see tests/test_aml_cycle.py).
test-aml-live: $(VENV)/.installed
	$(BIN)/python -m pytest -m live_aml tests/test_aml_cycle.py $(PYTEST_ARGS)

# The local AML workspace double, in the foreground: its first line is the tracking URI and environment.
aml-double: $(VENV)/.installed
	$(BIN)/python tests/aml_server.py $(ARGS)

# 50 jobs with random faults against the AML double; its last line counts what was lost (tests/soak.py).
soak: $(VENV)/.installed jvm-archives
	$(BIN)/python tests/soak.py $(ARGS)

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py $(ARGS)

bench-score: $(VENV)/.installed delta-jars
	$(BIN)/python bench/score.py $(ARGS)

bench-score-delta: $(VENV)/.installed delta-jars
	$(BIN)/python bench/score_delta.py $(ARGS)

bench-score-drift: $(VENV)/.installed delta-jars
	$(BIN)/python bench/score_drift.py $(ARGS)

bench-score-incremental: $(VENV)/.installed delta-jars
	$(BIN)/python bench/score_incremental.py $(ARGS)

bench-search: $(VENV)/.installed
	$(BIN)/python bench/search.py $(ARGS)

check: $(VENV)/.installed
	$(BIN)/synapse-ml-track check $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(RUNTIME_VENV) .jars mlruns build dist *.egg-info
