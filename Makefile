# Thin wrappers over nox sessions and the harness CLI; `make help` lists them.
PYTHON ?= python3
NOX ?= $(PYTHON) -m nox
SOLUTIONS ?= benchmark/solutions/cpu
OUT ?= results/cpu

.DEFAULT_GOAL := help
.PHONY: help setup bench bench-reference test test-container lint manifest image-base image-cpu image-gpu image-npu bench-cpu bench-gpu bench-npu clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

setup: ## Install the harness and its dev tools here (CPU torch build pinned first)
	bash scripts/setup.sh

bench: setup ## Main job: the bundled suite on the CPU backend with the bundled C++ solutions -> results/cpu
	$(PYTHON) -m harness run --backend cpu --solutions $(SOLUTIONS) --out $(OUT) --overwrite

bench-reference: setup ## A/A control: every case against its own reference on the CPU
	$(PYTHON) -m harness run --backend cpu --solutions benchmark/solutions/reference --out results/reference --overwrite

test: setup ## Run the test suite (what CI runs)
	$(NOX) -s tests

lint: setup ## ruff and mypy
	$(NOX) -s lint

manifest: setup ## Regenerate benchmark/manifest.json from the cases
	$(PYTHON) -m harness manifest --write

image-base: ## Build the Debian base image with debootstrap (air-gapped sites)
	$(NOX) -s base-image

image-cpu: ## Build the CPU image
	$(NOX) -s image-cpu

image-gpu: ## Build the CUDA image (on a host with the NVIDIA container toolkit)
	$(NOX) -s image-gpu

image-npu: ## Build the Ascend image (on an Ascend host)
	$(NOX) -s image-npu

bench-cpu: ## Run the suite inside the CPU image
	$(NOX) -s bench-cpu

bench-gpu: ## Run the suite inside the CUDA image
	$(NOX) -s bench-gpu

bench-npu: ## Run the suite inside the Ascend image
	$(NOX) -s bench-npu

test-container: ## Container integration tests (needs a Docker engine and the CPU image)
	$(NOX) -s tests-container

clean: ## Remove results and caches
	rm -rf results .nox .pytest_cache .mypy_cache .ruff_cache build
