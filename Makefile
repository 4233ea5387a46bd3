# notify-service: every command a newcomer needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PYTHON    ?= python3
MOTO_PORT ?= 5055
SMTP_PORT ?= 2525
API_PORT  ?= 3000
export MOTO_PORT SMTP_PORT
export NOTIFY_LOCAL_PORT ?= $(API_PORT)
export AWS_ENDPOINT_URL ?= http://127.0.0.1:$(MOTO_PORT)
export AWS_REGION ?= us-east-1
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
SERVICES  := tests/support/services.sh

.PHONY: help venv services-up services-down test demo up bench lint fmt clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create the Python virtualenv with moto, aiosmtpd and cfn-lint

$(VENV)/.installed: tests/support/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/support/requirements.txt
	touch $@

services-up: venv ## start moto (127.0.0.1:5055, MOTO_PORT=…) and the SMTP sink (127.0.0.1:2525, SMTP_PORT=…)
	$(SERVICES) up

services-down: ## stop them
	$(SERVICES) down

test: venv ## run the full test suite (starts and stops moto and the SMTP sink itself)
	$(SERVICES) run cargo test --workspace --locked

demo: venv ## bring the whole service up locally and show a section event delivered as an e-mail
	cargo build --locked -p notify-testkit --bins
	$(SERVICES) run tests/support/demo.sh

up: venv ## run the whole service locally until Ctrl-C (API on http://127.0.0.1:3000, API_PORT=…)
	cargo build --locked -p notify-testkit --bins
	$(SERVICES) run target/debug/local-stack

bench: ## per-send CPU cost of building and signing one request, per kind (release build)
	cargo run --release --locked -p notify-testkit --bin bench

lint: ## formatting and clippy, as CI checks them
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(MAKE) --no-print-directory infra-lint

fmt: ## format the code
	cargo fmt --all

clean: services-down ## remove build output, the virtualenv and local state
	rm -rf target $(VENV) .local

.PHONY: build deploy infra-lint coldstart

# `make build` installs its tools itself: cargo-lambda and zig into .venv (pinned in
# infra/requirements.txt) and Rust's arm64 standard library. When they cannot be installed
# (offline, no rustup) infra/build.sh builds for this machine instead and says what is missing.
BUILD_TOOLS := $(VENV)/.build-tools

$(BUILD_TOOLS): infra/requirements.txt
	@test -x $(VENV)/bin/pip || $(PYTHON) -m venv $(VENV)
	@if $(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt; then \
	  touch $@; \
	else \
	  echo "note: could not install cargo-lambda and zig (offline?)"; \
	fi

build: $(BUILD_TOOLS) ## release builds of the functions: target/lambda/<fn>/bootstrap.zip (arm64, via cargo-lambda)
	@rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || \
	  echo "note: could not add Rust's aarch64-unknown-linux-gnu standard library (no rustup, or offline)"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" infra/build.sh

coldstart: venv ## cold start and peak memory of the three release binaries (host build, moto, a local Runtime API)
	cargo build --release --locked -p notify-api -p notify-events -p notify-scheduler
	cargo build --locked -p notify-testkit --bin coldstart
	$(SERVICES) run target/debug/coldstart target/release

# The exports above point the AWS SDKs at moto with dummy keys. A deployment uses your own AWS
# settings, so the Makefile's defaults (and only those, not yours) are dropped for it.
LOCAL_AWS_DEFAULTS := $(foreach v,AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY,$(if $(filter file,$(origin $(v))),-u $(v)))

deploy: build ## deploy to AWS with the SAM CLI, guided the first time (docs/deploy.md)
	env $(LOCAL_AWS_DEFAULTS) infra/deploy.sh $(SAM_ARGS)

infra-lint: venv ## cfn-lint on infra/template.yaml
	$(VENV)/bin/cfn-lint infra/template.yaml
