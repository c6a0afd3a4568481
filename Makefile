# One entry point. Every target does its own set-up, so `make test` works on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

# Debian packages the tests use for real: promtool, amtool and the daemons; debootstrap for images.
DEB_PACKAGES := prometheus prometheus-alertmanager prometheus-node-exporter debootstrap
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The versions the tests pass with (make lock refreshes them; constraints/CHANGES.md says why).
# The virtualenv is made afresh whenever they change, so it holds exactly what is pinned.
CONSTRAINTS := constraints/test.txt
$(STAMP): pyproject.toml $(CONSTRAINTS)
	rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	$(BIN)/pip check
	@touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv with the package and the test tools, at the pinned versions

# checkov in its own virtualenv: it depends on bc-python-hcl2, which writes into the same `hcl2`
# package as the tests' python-hcl2.
CHECKOV_VENV := .cache/checkov
export CHECKOV := $(CURDIR)/$(CHECKOV_VENV)/bin/checkov
$(CHECKOV_VENV)/.installed: constraints/checkov.in constraints/checkov.txt
	rm -rf $(CHECKOV_VENV) && $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet -c constraints/checkov.txt --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet -c constraints/checkov.txt -r constraints/checkov.in
	$(CHECKOV_VENV)/bin/pip check
	@touch $@

.PHONY: checkov
checkov: $(CHECKOV_VENV)/.installed ## checkov in its own virtualenv (.cache/checkov), at the pinned versions

.PHONY: lock
lock: ## re-resolve the pinned versions from PyPI (constraints/*.txt), print and note what moved
	$(PYTHON) -m tests.support.lock

.PHONY: deps
deps: ## install the Debian packages the tests use (needs root or passwordless sudo)
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

.PHONY: collections
collections: $(STAMP) ## check the pinned collections are present (GALAXY=1 installs them from Galaxy)
ifdef GALAXY
	$(BIN)/ansible-galaxy collection install -r requirements.yml -p ./collections
endif
	$(BIN)/python -m tests.support.collections requirements.yml

.PHONY: image
image: deps ## build (once) the Debian systemd host image used by molecule, tests and the lab
	$(BIN)/python -m tests.support.host_image

# Wheels of qdrant-ops and its dependencies for the nodes' virtualenv (qdrant_backup role), as a
# directory and the same as one tar: nodes install with --no-index, so they need no internet. Built for this Python; for nodes with another
# Python use NODE_PYTHON=3.12 (binary wheels for manylinux x86_64 are downloaded instead).
WHEELHOUSE := .cache/wheelhouse
NODE_PYTHON ?=
SOURCES := $(shell find src -name '*.py') pyproject.toml
$(WHEELHOUSE).tar: $(STAMP) $(SOURCES) Makefile
	@rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	SOURCE_DATE_EPOCH=315532800 $(BIN)/pip wheel --quiet --no-deps -w $(WHEELHOUSE) .
	@# The nodes get the versions the tests passed with.
ifeq ($(NODE_PYTHON),)
	$(BIN)/pip wheel --quiet -c $(CONSTRAINTS) -w $(WHEELHOUSE) $(WHEELHOUSE)/qdrant_ops-*.whl
	$(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' > $(WHEELHOUSE)/python-version
else
	$(BIN)/pip download --quiet -c $(CONSTRAINTS) --only-binary=:all: --platform manylinux2014_x86_64 \
	  --python-version $(NODE_PYTHON) -d $(WHEELHOUSE) $(WHEELHOUSE)/qdrant_ops-*.whl
	echo $(NODE_PYTHON) > $(WHEELHOUSE)/python-version
endif
	@# One reproducible file: the role copies it in one transfer, and only when it changed.
	tar --sort=name --mtime=@315532800 --owner=0 --group=0 --numeric-owner -cf $@ -C $(WHEELHOUSE) .

.PHONY: wheelhouse
wheelhouse: $(WHEELHOUSE).tar ## wheels for the nodes' qdrant-ops virtualenv (NODE_PYTHON=3.12 for other nodes)

.PHONY: lint
lint: $(STAMP) ## ruff and ansible-lint (production profile)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint --profile production

.PHONY: pytest
pytest: $(STAMP) checkov deps image ## the pytest suite (unit, integration, e2e)
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: unit
unit: $(STAMP) ## the pure tests (tests/unit): under a minute, no apt, Docker, moto or child processes
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: molecule
molecule: $(STAMP) image collections wheelhouse ## every molecule scenario under molecule/
	@mkdir -p .cache
	@for scenario in $$(ls molecule 2>/dev/null); do \
	  [ -f molecule/$$scenario/molecule.yml ] || continue; \
	  echo "== molecule test -s $$scenario"; \
	  $(BIN)/molecule test -s $$scenario 2>&1 | tee .cache/molecule-$$scenario.log; \
	  if [ -d .cache/molecule-secrets/$$scenario ]; then \
	    $(BIN)/python -m tests.support.no_secrets .cache/molecule-$$scenario.log .cache/molecule-secrets/$$scenario; \
	  fi; \
	done

# Deploy to an inventory, e.g. the one terraform apply wrote: make deploy INVENTORY=inventory/<name>
.PHONY: deploy
deploy: $(STAMP) collections wheelhouse ## run site.yml against INVENTORY (builds the wheelhouse first)
	@[ -n "$(INVENTORY)" ] || { echo "make deploy: set INVENTORY=<inventory path>, e.g. inventory/<cluster> from terraform apply" >&2; exit 2; }
	@[ -e "$(INVENTORY)" ] || { echo "make deploy: inventory $(INVENTORY) does not exist (run terraform apply first?)" >&2; exit 2; }
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml $(ANSIBLE_ARGS)

# -- the local lab ------------------------------------------------------------------------------------
QDRANT_VERSION := $(shell sed -n 's/^qdrant_version: "\(.*\)"$$/\1/p' roles/qdrant/defaults/main.yml)
QDRANT_RELEASE_URL ?= https://github.com/qdrant/qdrant/releases/download/v$(QDRANT_VERSION)/qdrant-x86_64-unknown-linux-gnu.tar.gz
# Pin the release archive's sha256 (optional: else the first download's is recorded and held to).
QDRANT_SHA256 ?= $(shell sed -n 's/^qdrant_archive_sha256: "\([0-9a-fA-F]\{64\}\)"$$/\1/p' roles/qdrant/defaults/main.yml)
LAB_PLAYBOOK = $(BIN)/ansible-playbook -i inventory/lab $(if $(QDRANT_SHA256),-e qdrant_archive_sha256=$(QDRANT_SHA256))
LAB_ARGS ?=

.PHONY: lab-check
lab-check: ## where the lab's Qdrant comes from (QDRANT_BINARY or the pinned release), or stop
	@if [ -n "$${QDRANT_BINARY:-}" ]; then \
	  [ -f "$$QDRANT_BINARY" ] && [ -x "$$QDRANT_BINARY" ] || { \
	    echo "make lab: QDRANT_BINARY=$$QDRANT_BINARY is not an executable file: fix the path" >&2; exit 2; }; \
	  echo "make lab: Qdrant from QDRANT_BINARY=$$QDRANT_BINARY"; \
	elif $(PYTHON) -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=10)' \
	    "$(QDRANT_RELEASE_URL)" >/dev/null 2>&1; then \
	  echo "make lab: Qdrant $(QDRANT_VERSION) from the release download ($(if $(QDRANT_SHA256),pinned sha256 $(QDRANT_SHA256),sha256 recorded by the first download: docs/cluster.md))"; \
	else \
	  echo "make lab: no Qdrant binary. QDRANT_BINARY is not set and the pinned release $(QDRANT_VERSION)" \
	    "($(QDRANT_RELEASE_URL)) cannot be downloaded from this machine." \
	    "Set QDRANT_BINARY=/path/to/qdrant (version $(QDRANT_VERSION)) and run make lab again." >&2; \
	  exit 2; \
	fi

.PHONY: lab
lab: lab-check venv deps collections image wheelhouse ## the whole deployment on this machine (3 Qdrant + monitoring containers, S3), then a second run that must change nothing
	$(LAB_PLAYBOOK) playbooks/lab.yml $(LAB_ARGS)
	@echo "== second run of site.yml against the lab: it must report zero changes"
	@$(LAB_PLAYBOOK) site.yml $(LAB_ARGS) > .cache/lab/second-run.log 2>&1 || { tail -50 .cache/lab/second-run.log; exit 1; }
	@sed -n '/PLAY RECAP/,$$p' .cache/lab/second-run.log
	@! grep -A20 'PLAY RECAP' .cache/lab/second-run.log | grep -Eq 'changed=[1-9]' || { \
	  echo "make lab: the second run changed something (see .cache/lab/second-run.log)" >&2; exit 1; }
	@echo "make lab: second run changed nothing. Endpoints: see 'Where everything is' above; stop with make lab-down"

.PHONY: lab-down
lab-down: $(STAMP) ## remove the lab's containers, network, S3 endpoint, data and secrets (keeps the image)
	$(LAB_PLAYBOOK) playbooks/lab_down.yml

.PHONY: lab-drill
lab-drill: lab-check venv deps collections image wheelhouse ## the lab drill: backup, wipe, restore, node-down alert, rolling re-install under writes; with QDRANT_BINARY_NEXT also the upgrade to that version
	$(BIN)/pytest -s -p no:cacheprovider tests/e2e/test_lab_drill.py $(PYTEST_ARGS)

.PHONY: test
test: venv checkov deps collections image wheelhouse lint pytest molecule ## everything CI runs
	@echo "make test: all checks passed"
