# orderflow: the commands people type. `make help` lists them.
# Every target installs what it needs first: uv (from PyPI, pinned), the Python packages
# (uv.lock), and the pinned tools (daprd, Dapr's sentry and injector, socat, Redis,
# Prometheus, promtool, Jaeger; for the local Kubernetes control plane, Kubernetes 1.34.4,
# etcd, kwok, metrics-server and Helm, built from the Go module proxy the first time).

UV_VERSION := 0.13.9
# Without uv on the PATH, uv comes from PyPI into a venv of its own beside the cached tools:
# a system Python that follows PEP 668 (Debian, Ubuntu, Homebrew) refuses a plain
# `pip install`. https://peps.python.org/pep-0668/
UV_HOME := $(or $(ORDERFLOW_TOOLS_DIR),$(HOME)/.cache/orderflow/tools)/uv-$(UV_VERSION)
UV := $(shell command -v uv 2>/dev/null || echo $(UV_HOME)/bin/uv)
ORDERFLOW := $(UV) run --frozen orderflow
# What the targets start finds uv too: the labs' `uv run` steps, skaffold's hooks.
export PATH := $(dir $(UV)):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help uv sync tools up down wait fault fault-clear load bench status dashboards screenshots diagram cluster cluster-down node-tools cluster-tools cluster-local cluster-local-down test lint format unit integration kubernetes clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

uv:
	@$(UV) --version >/dev/null 2>&1 || { \
	  echo "orderflow: installing uv $(UV_VERSION) from PyPI into $(UV_HOME)"; \
	  python3 -m venv $(UV_HOME) && $(UV_HOME)/bin/pip install --quiet uv==$(UV_VERSION); }

sync: uv ## install the Python packages from uv.lock into .venv
	@$(UV) sync --frozen --quiet

tools: sync ## provision daprd, sentry, socat, Redis, Prometheus, promtool and Jaeger (cached, pinned)
	@$(ORDERFLOW) tools

up: tools ## run the local stack (all services, sidecars, Redis, Prometheus, Jaeger) until Ctrl-C
	@$(ORDERFLOW) up

down: sync ## stop a stack that `make up` runs in another terminal
	@$(ORDERFLOW) down

wait: sync ## return once the stack that `make up` runs in another terminal is healthy
	@$(ORDERFLOW) wait

fault: sync ## set fault flags, e.g. make fault SERVICE=payments FLAGS="error_rate=30" (docs/faults.md)
	@$(ORDERFLOW) fault set $(SERVICE) $(FLAGS)

fault-clear: sync ## turn a service's fault flags off, e.g. make fault-clear SERVICE=payments
	@$(ORDERFLOW) fault clear $(SERVICE)

load: sync ## one Locust scenario against a running stack, e.g. make load SCENARIO=chaos (docs/load.md)
	@$(UV) run --frozen orderflow-load $(SCENARIO)

bench: tools ## the benchmarks (10-25 min): starts its own stacks; writes .run/bench/ (docs/load.md)
	@$(ORDERFLOW) bench

status: sync ## where monitoring, Dapr observability, resiliency and HPAs stand, from live signals
	@$(ORDERFLOW) status

dashboards: sync ## regenerate the dashboards JSON and the Kubernetes PrometheusRule from their sources
	$(UV) run --frozen orderflow-dashboards
	$(UV) run --frozen python -m orderflow_devtools.k8s.prometheusrule

screenshots: sync ## docs/images from a running stack (`make up`): Prometheus, Locust, a dashboard rendering
	@$(UV) run --frozen orderflow-pictures screenshots

diagram: sync ## docs/images/architecture.png from its source, docs/architecture.dot (Graphviz)
	@$(UV) run --frozen orderflow-pictures diagram

# With Docker: kind. Without (Linux, as root): a node of real containers in a network
# namespace of its own, until Ctrl-C (docs/kubernetes.md).
HAVE_DOCKER := $(shell command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 && echo yes)

cluster: ## the local cluster for `skaffold dev`: kind with Docker, else a real node here (docs/kubernetes.md)
ifeq ($(HAVE_DOCKER),yes)
	kind create cluster --config deploy/kind/cluster.yaml
else
	@$(MAKE) --no-print-directory node-tools
	@$(ORDERFLOW) cluster node
endif

cluster-down: sync ## stop the cluster of `make cluster` (kind: delete it)
ifeq ($(HAVE_DOCKER),yes)
	kind delete cluster --name orderflow
else
	@$(ORDERFLOW) cluster node-down
endif

node-tools: cluster-tools ## provision the real node: kubelet, kube-proxy (Go builds), Debian's containerd, runc, buildah... (root)
	@$(ORDERFLOW) cluster node-tools

cluster-tools: sync ## provision the local Kubernetes control plane (11-16 min the first time, then cached)
	@$(ORDERFLOW) cluster tools

cluster-local: cluster-tools ## run a real Kubernetes control plane on 127.0.0.1, kwok for its node, until Ctrl-C
	@$(ORDERFLOW) cluster up

cluster-local-down: sync ## stop a control plane that `make cluster-local` runs in another terminal
	@$(ORDERFLOW) cluster down

lint: sync ## ruff (lint and format check) and mypy strict
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: sync ## apply ruff's fixes and formatting
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

unit: sync ## the fast tests only (Dapr faked at the adapter)
	$(UV) run --frozen pytest -m "not integration and not kubernetes"

integration: tools ## the tests against the real daprd, Redis, Prometheus and Jaeger
	$(UV) run --frozen pytest -m integration

kubernetes: node-tools ## the tests against the local Kubernetes control plane and the real node (tests/kubernetes)
	$(UV) run --frozen pytest -m kubernetes

test: tools node-tools lint ## everything CI runs: lint, types, unit, integration and Kubernetes tests
	$(UV) run --frozen pytest

clean: ## remove the local stack's data and the caches in the tree
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
