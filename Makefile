# zkpy developer entry points. `make run` and `make test` work on a fresh clone: they create the
# virtualenv and install what they need, including the reference ZooKeeper from Debian.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REFERENCE_STAMP := /usr/share/java/zookeeper.jar
DEBIAN_PACKAGES := zookeeper zookeeper-bin libcurator-client-java libcurator-framework-java \
	libcurator-recipes-java libcurator-discovery-java chromium openssl openjdk-17-jdk-headless
SEEDS ?= 200

.PHONY: run test unit compat bench sim reference venv lock architecture clean

# Every Python package, zkpy's dependencies and their dependencies, pip and setuptools
# included, is installed at the version requirements.lock names, so a fresh machine runs what the
# tests ran with. zkpy itself goes in without dependencies or build isolation (setuptools from the
# lock builds it), and `pip check` fails when pyproject.toml needs something the lock lacks.
$(STAMP): pyproject.toml requirements.lock
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

venv: $(STAMP)

# A deliberate upgrade: resolve pyproject.toml's ranges afresh in a scratch virtualenv, write the
# result to requirements.lock, then rebuild the venv from it and run every test.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(LOCK_VENV)/bin/python -m pip install --quiet '.[test,bench]'
	{ echo "# Written by 'make lock' on $$(date -u +%Y-%m-%d); every package at the version the tests ran with."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | grep -v '^zkpy[ =@]'; } > requirements.lock
	rm -rf $(LOCK_VENV)
	$(MAKE) test

venv: $(STAMP)

# The reference ZooKeeper 3.8, its Java client and Curator, and Chromium for the dashboard
# test, from Debian's packages.
reference: $(REFERENCE_STAMP) /usr/bin/chromium
$(REFERENCE_STAMP) /usr/bin/chromium:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES)

run: $(STAMP)
	$(PY) -m zkpy

test: $(STAMP) reference
	$(PY) -m pytest -q -p no:cacheprovider tests

unit: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

compat: $(STAMP) reference
	$(PY) -m pytest -q -p no:cacheprovider tests/compat --compat-report=compat-report.txt

sim: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/sim --seeds=$(SEEDS)

bench: $(STAMP) reference
	$(PY) -m benchmarks.run_all

# The import graph in docs/architecture.md, regenerated from the source.
architecture: $(STAMP)
	$(PY) -m tests.support.importgraph --write docs/architecture.md

clean:
	rm -rf $(VENV) $(LOCK_VENV) build *.egg-info
