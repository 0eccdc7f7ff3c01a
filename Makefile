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

.PHONY: run test unit compat bench sim reference venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

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
	$(PY) -m zkpy.bench.run_all

clean:
	rm -rf $(VENV) build *.egg-info
