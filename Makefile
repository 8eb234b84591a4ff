# Every target sets up what it needs; run `make help` for the list.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export NLTK_DATA ?= $(abspath ../shared/nltk_data)

.PHONY: help setup system-deps local test test-sagemaker synth deploy destroy data train evaluate clean

help:
	@echo "make local    - run the whole chain on this machine (train if needed, serve, API, page)"
	@echo "make test     - run the test suite (sets up venv, Chromium and the CDK CLI first)"
	@echo "make data     - fetch the IMDB archive (or find ../shared/data) into ./data"
	@echo "make train    - train the full model into ./artifacts/model"
	@echo "make synth    - cdk synth (offline), deploy / destroy - on your AWS account"

# The CPU build of torch first: any other torch spec makes pip fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[cdk,dev]'
	touch $@

setup: $(STAMP)

node_modules/.bin/cdk: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

system-deps: node_modules/.bin/cdk
	@bash scripts/install_system_deps.sh

local: setup
	$(PY) scripts/local_mode.py $(ARGS)

test: setup system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# Optional: the SageMaker SDK script against moto, in a venv of its own (the SDK is heavy and pins
# packages the main environment does not want; it needs no torch).
test-sagemaker:
	python3 -m venv .venv-sagemaker
	.venv-sagemaker/bin/pip install -q 'sagemaker>=2.200,<3' 'moto[s3,sagemaker]>=5,<6' 'pytest>=8,<10'
	.venv-sagemaker/bin/python -m pytest -p no:cacheprovider --noconftest tests/test_sagemaker_job.py

data: setup
	$(PY) -m model.download $(ARGS)

# The data command prints the archive it found or fetched (data/, ../shared/data, $$IMDB_DATA).
train: setup
	data="$$($(PY) -m model.download)" && $(PY) -m model.train --data "$$data" --model-dir artifacts/model $(ARGS)

evaluate: setup
	$(PY) -m model.evaluate --model-dir artifacts/model $(ARGS)

synth: setup node_modules/.bin/cdk
	npx cdk synth $(ARGS)

deploy: setup node_modules/.bin/cdk
	npx cdk deploy --all --require-approval never $(ARGS)

destroy: setup node_modules/.bin/cdk
	npx cdk destroy --all --force $(ARGS)

clean:
	rm -rf cdk.out .pytest_cache test-artifacts
