# Two commands do all set-up on a fresh machine (Python 3.11 and Java 17):
#   make train   train on the bundled penguins data, tracked in a local MLflow store
#   make test    run the test suite
PYTHON ?= python3.11
VENV := .venv
TOOLS_VENV := .venv-tools
BIN := $(VENV)/bin

.PHONY: train test test-aml-live aml-double bench check clean

# The stamp files make the environments rebuild only when their pins change.
$(VENV)/.installed: requirements-dev.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(TOOLS_VENV)/.installed: tools-requirements.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r tools-requirements.txt
	touch $@

train: $(VENV)/.installed
	$(BIN)/synapse-ml-track train $(ARGS)

test: $(VENV)/.installed $(TOOLS_VENV)/.installed
	SMT_TOOLS_BIN=$(CURDIR)/$(TOOLS_VENV)/bin $(BIN)/python -m pytest $(PYTEST_ARGS)

# The job cycle against the real workspace named in the environment (see tests/test_aml_cycle.py).
test-aml-live: $(VENV)/.installed
	$(BIN)/python -m pytest -m live_aml tests/test_aml_cycle.py $(PYTEST_ARGS)

# The local AML workspace double, in the foreground: its first line is the tracking URI and environment.
aml-double: $(VENV)/.installed
	$(BIN)/python tests/aml_server.py $(ARGS)

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py $(ARGS)

check: $(VENV)/.installed
	$(BIN)/synapse-ml-track check $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS_VENV) mlruns build dist *.egg-info
