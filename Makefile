# Developer toolchain for the xenpci.passthrough collection.
#
#   make help     list the targets
#   make quick    unit tests + ansible-test sanity (the inner loop)
#   make test     everything CI runs
#
# Tools are installed on first use into .venv/ (newest Python >= 3.12 found, see
# tests/tools/find-python; override with PYTHON=/path/to/python3.13). ansible-test,
# pytest, ansible-lint and ansible-galaxy work on a copy of the collection under
# build/collections/ansible_collections/<namespace>/<name>/ (see tests/tools/sync-tree).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory

NAMESPACE := $(shell sed -n 's/^namespace: *//p' galaxy.yml)
NAME      := $(shell sed -n 's/^name: *//p' galaxy.yml)

VENV        := $(CURDIR)/.venv
BIN         := $(VENV)/bin
VENV_STAMP  := $(VENV)/.requirements-dev.stamp
BUILD       ?= $(CURDIR)/build
COLLECTIONS := $(BUILD)/collections
TREE        := $(COLLECTIONS)/ansible_collections/$(NAMESPACE)/$(NAME)
PYTHONS_DIR := $(BUILD)/pythons
# The lowest ansible-core meta/runtime.yml promises, in a venv of its own with a Python it supports.
LOWEST_CORE_PYTHON := 3.12
VENV_LOWEST := $(CURDIR)/.venv-lowest-core
BIN_LOWEST  := $(VENV_LOWEST)/bin
LOWEST_STAMP := $(VENV_LOWEST)/.requirements-lowest-core.stamp
DOCS_DIR    := $(BUILD)/docs-check
TOOLS       := $(CURDIR)/tests/tools

# Extra arguments, e.g. make units PYTEST_ARGS='-n auto -k pci'
#                       make sanity SANITY_ARGS='--test pylint --python 3.13'
#                       make molecule MOLECULE_SCENARIOS=pciback MOLECULE_ARGS='--destroy=never'
PYTEST_ARGS ?=
MOLECULE_ARGS ?=
RIG_ARGS ?=
RELIABILITY_ARGS ?=
SANITY_ARGS ?=
# The rig's architecture: x86_64 or aarch64 (make rig-test RIG_ARCH=aarch64)
RIG_ARCH ?= x86_64
export RIG_ARCH
# The rig's Debian: bookworm (Xen 4.17, Linux 6.1) or trixie (Xen 4.20, Linux 6.12)
RIG_SUITE ?= bookworm
export RIG_SUITE

# The venv's tools come first (ansible-lint and ansible-test call ansible-* by name).
export PATH := $(BIN):$(PATH)
unexport PYTHONPATH

.PHONY: help venv venv-lowest units-lowest sanity-lowest tree units sanity lint changelog-lint docs-check bench quick test rig-test rig-test-full rig-smoke rig-test-arm rig-smoke-arm rig-test-arm-trixie rig-smoke-arm-trixie demo reliability bench-rig molecule-images molecule molecule-rig clean distclean

help: ## Show this help
	@echo "Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-20s %s\n", $$1, $$2 }'

venv: $(VENV_STAMP) ## Create/update .venv/ from requirements-dev.txt
	@:

$(VENV_STAMP): requirements-dev.txt
	@if ! "$(BIN)/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    python=$$("$(TOOLS)/find-python"); \
	    echo "Creating .venv with $$python"; \
	    rm -rf "$(VENV)"; \
	    "$$python" -m venv "$(VENV)"; \
	    "$(BIN)/python" -m pip install --quiet --upgrade pip; \
	fi
	@echo "Installing requirements-dev.txt into .venv"
	@"$(BIN)/python" -m pip install --quiet -r requirements-dev.txt
	@touch "$@"

venv-lowest: $(LOWEST_STAMP) ## Create/update .venv-lowest-core/ (ansible-core 2.16) from requirements-lowest-core.txt
	@:

$(LOWEST_STAMP): requirements-lowest-core.txt
	@if ! "$(BIN_LOWEST)/python" -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != "$(LOWEST_CORE_PYTHON)")' 2>/dev/null; then \
	    python=$$("$(TOOLS)/find-python" $(LOWEST_CORE_PYTHON)); \
	    echo "Creating .venv-lowest-core with $$python"; \
	    rm -rf "$(VENV_LOWEST)"; \
	    "$$python" -m venv "$(VENV_LOWEST)"; \
	    "$(BIN_LOWEST)/python" -m pip install --quiet --upgrade pip; \
	fi
	@echo "Installing requirements-lowest-core.txt into .venv-lowest-core"
	@"$(BIN_LOWEST)/python" -m pip install --quiet -r requirements-lowest-core.txt
	@touch "$@"

# make test syncs once, then sets SYNC_TREE=0: its two lanes run targets side by side on one tree.
tree: ## Copy the collection to build/collections/ansible_collections/...
	@if [ "$${SYNC_TREE:-1}" = 1 ]; then "$(TOOLS)/sync-tree" "$(TREE)"; fi

units: venv tree ## Run the unit tests (pytest on tests/unit)
	@cd "$(TREE)" && PYTHONPATH="$(COLLECTIONS)" PYTHONDONTWRITEBYTECODE=1 \
	    HYPOTHESIS_STORAGE_DIRECTORY="$(BUILD)/hypothesis" \
	    "$(BIN)/python" -m pytest -o cache_dir="$(BUILD)/pytest-cache" tests/unit $(PYTEST_ARGS)

sanity: venv tree ## Run ansible-test sanity (every Python 3.9+ that is installed)
	@cd "$(TREE)" && "$(TOOLS)/ansible-test-env" "$(BIN)/python" "$(PYTHONS_DIR)" \
	    ansible-test sanity --venv $(SANITY_ARGS)

units-lowest: venv-lowest tree ## The unit tests on the lowest ansible-core meta/runtime.yml promises (2.16)
	@cd "$(TREE)" && PYTHONPATH="$(COLLECTIONS)" PYTHONDONTWRITEBYTECODE=1 \
	    HYPOTHESIS_STORAGE_DIRECTORY="$(BUILD)/hypothesis-lowest" \
	    "$(BIN_LOWEST)/python" -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

sanity-lowest: venv-lowest tree ## ansible-test sanity of the lowest ansible-core (2.16), on the Pythons it supports
	@cd "$(TREE)" && PATH="$(BIN_LOWEST):$$PATH" "$(TOOLS)/ansible-test-env" "$(BIN_LOWEST)/python" "$(BUILD)/pythons-lowest" \
	    "$(BIN_LOWEST)/ansible-test" sanity --venv $(SANITY_ARGS)

lint: venv tree ## Run ansible-lint (production profile, offline)
	@ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" ansible-lint --profile production --offline

changelog-lint: venv ## Check changelogs/ with antsibull-changelog lint
	@antsibull-changelog lint && echo "changelog-lint: OK"

docs-check: venv ## Build the collection from this checkout, install the tarball, ansible-doc every plugin and role, syntax-check every playbook by FQCN
	@"$(TOOLS)/docs-check" "$(DOCS_DIR)"

bench: venv tree ## Run the benchmarks tests/bench/bench_*.py but the rig ones (make bench-rig); not part of make test
	@cd "$(TREE)" && "$(TOOLS)/bench" "$(BIN)/python" "$(COLLECTIONS)"

rig-test: venv tree ## Integration tests on the Xen rig: dom0 booted in QEMU (~12 min cold; RIG_ARCH=aarch64: arm64 rig)
	@ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" tests/rig/run-tests $(RIG_ARGS)

rig-test-full: venv tree ## rig-test plus the slow ones (the roles on the rig; ~45 min)
	@ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" tests/rig/run-tests --full $(RIG_ARGS)

rig-smoke: venv tree ## The rig's smoke tests: boot, xen-pciback, one assign and give back (RIG_ARCH as rig-test)
	@ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" tests/rig/run-tests --smoke $(RIG_ARGS)

rig-test-arm: ## rig-test on the arm64 rig (Xen 4.17 on arm64 under TCG; RIG_SUITE=trixie: 4.20)
	@$(MAKE) rig-test RIG_ARCH=aarch64

rig-smoke-arm: ## rig-smoke on the arm64 rig
	@$(MAKE) rig-smoke RIG_ARCH=aarch64

rig-test-arm-trixie: ## rig-test on the Debian 13 arm64 rig (Xen 4.20, Linux 6.12)
	@$(MAKE) rig-test RIG_ARCH=aarch64 RIG_SUITE=trixie

rig-smoke-arm-trixie: ## rig-smoke on the Debian 13 arm64 rig
	@$(MAKE) rig-smoke RIG_ARCH=aarch64 RIG_SUITE=trixie

demo: venv tree ## The main job on the rig: readiness, assign, restore, with xl's view (RIG_KEEP=1 keeps it up)
	@ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" tests/rig/with-rig tests/rig/demo

reliability: venv tree ## Faults on the rig: SIGKILL loop, power cut, concurrent runs, xenstored stopped (~40 min)
	@ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" RELIABILITY_OUT="$(BUILD)/reliability.json" \
	    tests/rig/with-rig python tests/rig/reliability/run_reliability.py $(RELIABILITY_ARGS)

bench-rig: venv tree ## Benchmarks on the rig: raw sysfs writes vs one task vs an xl loop; attach to a guest vs xl
	@ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" tests/rig/with-rig \
	    sh -c 'python tests/bench/bench_rig.py && python tests/bench/bench_rig_guest.py'

molecule-images: ## Build the molecule container images, Debian 12 and 13 (cached; ~4 min cold)
	@tests/molecule/build-images

molecule: venv tree ## Molecule scenarios on podman containers (skips when podman cannot run them)
	@cd "$(TREE)" && ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" tests/molecule/run $(MOLECULE_ARGS)

molecule-rig: venv tree ## Molecule scenario xen_rig on the Xen rig (boots it when not running)
	@cd "$(TREE)" && ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" tests/rig/with-rig tests/molecule/run-rig $(MOLECULE_ARGS)

quick: units sanity ## units + sanity

test: ## Everything CI runs: checks, molecule and the rig tests on three rigs, in two lanes, with a timing table
	@BUILD="$(BUILD)" MAKE="$(MAKE)" "$(TOOLS)/make-test"

clean: ## Remove build/ and caches (keeps .venv/)
	rm -rf "$(BUILD)" .ansible tests/output .pytest_cache

distclean: clean ## clean, and remove .venv/ and .venv-lowest-core/ too
	rm -rf "$(VENV)" "$(VENV_LOWEST)"
