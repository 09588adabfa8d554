# Signalman: `make demo` shows a release train; `make test` proves it.
# Every build cache lives outside the clone so CI and later sessions reuse it.

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/signalman
export CARGO_TARGET_DIR ?= $(CACHE)/target
export GOMODCACHE ?= $(CACHE)/gomod
export GOCACHE ?= $(CACHE)/gocache
export PATH := /usr/local/go/bin:$(HOME)/.cargo/bin:$(PATH)

KUBECONFIG_E2E := $(CURDIR)/.e2e/kubeconfig
PROM_PORT ?= 9090
export PROMETHEUS_URL ?= http://127.0.0.1:$(PROM_PORT)

.PHONY: test unit fuzz e2e crds check-crds check-layers build run cluster-up cluster-down prereqs bench-scale bench-restart bench-dashboard

## test: unit tests, the CRD check and the e2e suite on the local control plane.
# The prerequisite check comes first, before cargo builds anything.
# e2e/test.sh brings the local cluster up if none is running, runs `make unit`
# and the e2e suite, and stops the cluster again if it started it (also on
# failure) unless KEEP_CLUSTER=1.
test: prereqs
	@$(MAKE) --no-print-directory check-crds check-layers build fuzz
	e2e/test.sh

## prereqs: check every tool `make test` needs, saying how to install what is missing.
prereqs:
	@e2e/cluster/prereqs.sh test

## unit: fast tests of the pure core (simulated clock, property tests) and
## of the shell's pure parts (traffic providers, views, metrics).
unit:
	cargo test -p signalman-core -p signalman

## check-layers: the pure core builds on its own, without the kube client:
## in the workspace, feature unification would lend it one and hide a request.
check-layers:
	cargo check -q -p signalman-core

## fuzz: the property tests over hostile input (src/core/fuzz/: query
## templating, whole specs through validation, planning, preflight and the
## engine) at PROPTEST_CASES cases each instead of `make unit`'s 256; about
## 1.5 min in CI. Longer: `make fuzz PROPTEST_CASES=1000000`.
PROPTEST_CASES ?= 100000
fuzz:
	PROPTEST_CASES=$(PROPTEST_CASES) cargo test -q -p signalman-core --lib fuzz::

build:
	cargo build -p signalman --bins

## run: the operator against the local cluster (.e2e/kubeconfig) and its
## Prometheus, every namespace, metrics on $(SIGNALMAN_METRICS_ADDR).
SIGNALMAN_METRICS_ADDR ?= 127.0.0.1:8080
run:
	cargo run -p signalman --bin signalman -- run --kubeconfig $(KUBECONFIG_E2E) \
	  --prometheus-url $(PROMETHEUS_URL) --metrics-addr $(SIGNALMAN_METRICS_ADDR)

## crds: regenerate crds/ from the code (one file per CRD) and copy them, and
## the admission policy that makes approvals unforgeable, into the chart.
CRD_KINDS := releases releasepolicies releaseapprovals
ADMISSION := crds/signalman.dev_admission.yaml
CHART_ADMISSION := charts/signalman/templates/admission.yaml
crds:
	@cargo build -q -p signalman --bin signalman
	@for k in $(CRD_KINDS); do \
	  $(CARGO_TARGET_DIR)/debug/signalman crd $$k > crds/signalman.dev_$$k.yaml || exit 1; \
	  cp crds/signalman.dev_$$k.yaml charts/signalman/crds/signalman.dev_$$k.yaml; \
	done
	@# In the chart behind admission.create (the policies are cluster-scoped:
	@# one chart per cluster installs them), otherwise the same text.
	@{ echo '{{- if .Values.admission.create }}'; cat $(ADMISSION); echo '{{- end }}'; } > $(CHART_ADMISSION)

## check-crds: fail if crds/ (or the chart's copies) differ from what the code
## generates, or the chart's admission policy from crds/'s.
check-crds:
	@cargo build -q -p signalman --bin signalman
	@for k in $(CRD_KINDS); do \
	  $(CARGO_TARGET_DIR)/debug/signalman crd $$k | diff -u crds/signalman.dev_$$k.yaml - \
	    || { echo "crds/signalman.dev_$$k.yaml is stale: run 'make crds' and commit the result"; exit 1; }; \
	  diff -u crds/signalman.dev_$$k.yaml charts/signalman/crds/signalman.dev_$$k.yaml \
	    || { echo "charts/signalman/crds/ is stale: run 'make crds' and commit the result"; exit 1; }; \
	done
	@sed '1d;$$d' $(CHART_ADMISSION) | diff -u $(ADMISSION) - \
	  || { echo "$(CHART_ADMISSION) differs from $(ADMISSION): run 'make crds' and commit the result"; exit 1; }

## e2e: the end-to-end suite against .e2e/kubeconfig (see docs/testing.md).
## (Brings the local cluster up if needed and leaves it running. Against any
## other cluster: KUBECONFIG=... PROMETHEUS_URL=... cargo test -p signalman-e2e)
e2e: prereqs
	@$(MAKE) --no-print-directory build
	e2e/test.sh --e2e

## cluster-up: build (cached) and start the local control plane, Prometheus and
## the traffic simulator; idempotent. Prints KUBECONFIG and PROMETHEUS_URL.
cluster-up:
	e2e/cluster/up.sh

## cluster-down: stop exactly the processes cluster-up started; idempotent.
cluster-down:
	e2e/cluster/down.sh

.PHONY: demo demo-down demo-check

## demo: bring up the local cluster, start the operator, and watch the shop's
## two release trains: checkout-v5 succeeds, checkout-v5-1 breaches and rolls
## back. Leaves everything running; exits non-zero unless both ended as they should.
demo:
	e2e/demo/run.sh

## demo-down: stop the demo operator and remove the shop; stops the cluster too
## if `make demo` started it.
demo-down:
	e2e/demo/down.sh

## demo-check: `make demo` without a terminal, cleaning up after itself (for CI).
demo-check:
	DEMO_CHECK=1 e2e/demo/run.sh

## bench-scale: R Releases x 5 services in flight on one operator (release
## build) on the local cluster, per size in SIZES (services, multiples of 5);
## prints the figures and records them in docs/performance.md under LABEL.
## BAKE (s), INTERVAL (s), REPLICAS, CAP_FACTOR (x ideal), IDLE (s): see
## e2e/bench/scale.sh. Brings the cluster up if needed; leaves it running.
SIZES ?= 100 500
bench-scale:
	SIZES="$(SIZES)" BAKE="$(BAKE)" INTERVAL="$(INTERVAL)" REPLICAS="$(REPLICAS)" \
	  CAP_FACTOR="$(CAP_FACTOR)" IDLE="$(IDLE)" LABEL="$(LABEL)" e2e/bench/scale.sh

## bench-restart: RESTART_RELEASES (200) Releases in flight, the operator
## SIGKILLed KILL_AFTER seconds (half the ideal train) after they were
## created and started again: time until every train moves again, and no
## step repeated or skipped.
RESTART_RELEASES ?= 200
bench-restart:
	MODE=restart RESTART_RELEASES="$(RESTART_RELEASES)" KILL_AFTER="$(KILL_AFTER)" BAKE="$(BAKE)" \
	  INTERVAL="$(INTERVAL)" REPLICAS="$(REPLICAS)" CAP_FACTOR="$(CAP_FACTOR)" IDLE="$(IDLE)" \
	  LABEL="$(LABEL)" e2e/bench/scale.sh

## bench-dashboard: `kubectl signalman dashboard` with RELEASES (200) Releases
## listed and a SERVICES (50) service train, synthesized in-process (no
## cluster; release build): time to build the list and train JSON, their
## sizes, and in headless chromium the time to the graph on screen and one
## redraw. By hand, not in CI; the figures go in docs/performance.md.
bench-dashboard:
	@e2e/cluster/prereqs.sh browser
	RELEASES="$(or $(RELEASES),200)" SERVICES="$(or $(SERVICES),50)" \
	  cargo run -q --release -p signalman-e2e --bin bench-dashboard
