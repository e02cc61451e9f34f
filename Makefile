# Two commands on a fresh machine: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP_VERSION := 26.3
STAGE  ?= dev
# The model version the predict version CDK publishes serves: `.venv/bin/mlops --stage S champion --aws`.
CHAMPION ?= none
# make deploy: what to do about a running model canary (wait, promote, rollback), and cdk's --require-approval.
CANARY ?= wait
APPROVAL ?=
# aws-cdk-lib's jsii runtime warns on Node 20 (this machine's); the warning says nothing about our stacks.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint typecheck unit integration infra bench serve synth bootstrap deploy layer clean lock

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

venv: $(STAMP)  ## create .venv and install the pinned dependencies

demo: $(STAMP)  ## run the whole local lifecycle against moto on 127.0.0.1
	$(BIN)/mlops demo

test: lint typecheck $(STAMP)  ## lint, type-check, and run every test
	$(BIN)/python -m pytest

unit: $(STAMP)  ## domain tests only (no AWS, no sockets)
	$(BIN)/python -m pytest -m unit

integration: $(STAMP)  ## handler and adapter tests against moto
	$(BIN)/python -m pytest -m integration

infra: $(STAMP)  ## CDK synthesis checks (assertions, cdk-nag, cfn-lint)
	$(BIN)/python -m pytest -m infra

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check functions tests scripts benchmarks infra layers
	$(BIN)/ruff format --check functions tests scripts benchmarks infra layers

typecheck: $(STAMP)  ## mypy
	$(BIN)/mypy functions infra layers benchmarks

bench: $(STAMP)  ## print latency, cold-start, comparison, load, drift-check, S3 read and layer figures, write .bench/latest.json
	$(BIN)/python -m benchmarks.predict_bench
	$(BIN)/python -m benchmarks.compare_bench
	$(BIN)/python -m benchmarks.load_bench
	$(BIN)/python -m benchmarks.drift_bench
	$(BIN)/python -m benchmarks.reads_bench
	$(BIN)/python -m benchmarks.layer_bench

synth: layer  ## synthesize the stacks of STAGE (dev) into cdk.out/ (offline, no Docker, no CDK CLI)
	$(BIN)/python -m infra.app --stage $(STAGE) -c champion=$(CHAMPION)

bootstrap: $(STAMP)  ## cdk bootstrap the account and region of STAGE (dev) with the pinned CLI aws-cdk@2.1148.1
	$(BIN)/python -m infra.deploy bootstrap --stage $(STAGE)

deploy: layer  ## deploy STAGE (dev): waits for a model canary (CANARY=promote|rollback ends it), pins predict to the champion; APPROVAL=never runs prod unattended
	$(BIN)/python -m infra.deploy deploy --stage $(STAGE) --canary $(CANARY) $(if $(APPROVAL),--approval $(APPROVAL))

layer: $(STAMP)  ## build the Lambda layers for python3.12 x86_64 into layers/build/ and check each function's budget
	$(BIN)/python -m layers.build

serve: $(STAMP)  ## serve the HTTP API on 127.0.0.1:8080 against moto
	$(BIN)/mlops serve --port 8080

lock: $(STAMP)  ## re-pin requirements.lock from the current environment
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock.new
	@{ echo '# Exact versions of every package, for `pip install -c requirements.lock -e .[dev]` (make does this).'; \
	   echo '# Regenerate with `make lock` after changing pyproject.toml.'; cat requirements.lock.new; } > requirements.lock
	@rm requirements.lock.new

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .bench .mlops cdk.out layers/build
