# Every target sets up what it needs; run `make help` for the list.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export NLTK_DATA ?= $(abspath ../shared/nltk_data)

LOCK := model/requirements.lock

.PHONY: help setup cdk-setup system-deps local test test-sagemaker mutation image lock synth deploy destroy data train evaluate clean

help:
	@echo "make local           run the whole chain here: train if needed, serve, API, page"
	@echo "  ARGS=--full          train the full model (about 9 min) instead of the quick one (2 min)"
	@echo "  ARGS=--retrain       train again even if .local/model holds a model"
	@echo "make test            the whole test suite (sets up the venv, the CDK CLI, Chromium, podman)"
	@echo "make test-sagemaker  the SageMaker SDK script against moto, in a venv of its own"
	@echo "make mutation        mutation testing of the modules behind docs/reliability.md (slow; ARGS=proxy ...)"
	@echo "make image           build model/Dockerfile (Docker, Podman or buildah); prints the image"
	@echo "make lock            regenerate model/requirements.lock from model/requirements.in"
	@echo "make data            fetch the IMDB archive (or find ../shared/data) into ./data"
	@echo "make train           train the full model into ./artifacts/model"
	@echo "  ARGS=\"--preset quick --set epochs=3\"   presets: full, quick, original, tiny"
	@echo "make evaluate        test-split metrics of ./artifacts/model"
	@echo "make synth           cdk synth every stack offline, with cdk-nag (in .venv-cdk: no torch)"
	@echo "make deploy          cdk deploy every stack to your AWS account (docs/deploy.md)"
	@echo "make destroy         remove every stack it deployed"
	@echo "make setup           only create .venv (every target that needs it does this first)"
	@echo "make cdk-setup       only create .venv-cdk, the CDK libraries without torch"
	@echo "make clean           remove cdk.out and test outputs"

# torch's CPU build, asked for by its local version label from PyTorch's CPU index: a plain
# `torch==X` from PyPI is the several-GB CUDA build on Linux x86_64 (tests/test_torch_build.py).
# The venv runs the versions the image runs: the image's lock, without its hashes, constrains it, and
# torch's own dependencies come from it too (one look-up of the CPU index, not one per dependency).
TORCH_VERSION := $(shell sed -n 's/^torch==//p' model/requirements.in)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
$(STAMP): pyproject.toml $(LOCK)
	@echo "setup: $(VENV) with torch $(TORCH_VERSION) (CPU build, ~200 MB), the CDK libraries and the test tools;"
	@echo "setup: the first run takes 2-4 minutes, later runs nothing"
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --no-deps --extra-index-url $(TORCH_CPU_INDEX) torch==$(TORCH_VERSION)+cpu
	sed -e '/--hash=/d' -e 's/ \\$$//' $(LOCK) > $(VENV)/constraints.txt
	$(PIP) install -q -c $(VENV)/constraints.txt -e '.[cdk,dev]'
	@echo "setup: done ($(VENV))"
	touch $@

# synth, deploy and destroy need the CDK libraries and nothing of the model's (no torch): a venv of
# their own, seconds to make, the one CI's deploy job uses. cdk.json's app runs under it.
CDK_VENV := .venv-cdk
CDK_STAMP := $(CDK_VENV)/.installed
$(CDK_STAMP): pyproject.toml
	@echo "setup: $(CDK_VENV) with the CDK libraries only (about 30 s)"
	python3 -m venv $(CDK_VENV)
	$(CDK_VENV)/bin/pip install -q --upgrade pip
	python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["cdk"]))' > $(CDK_VENV)/requirements.txt
	$(CDK_VENV)/bin/pip install -q -r $(CDK_VENV)/requirements.txt
	touch $@

cdk-setup: $(CDK_STAMP)

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

# Not part of `make test`: it runs the tests once per mutant (1-3 hours per module here). Niced, one
# mutant at a time, in a scratch copy of the tree (scripts/mutation.py); ARGS names targets.
mutation: setup
	nice -n 19 $(PY) scripts/mutation.py $(ARGS)

# Prints the built image's reference as its last line (scripts/build_image.py explains the rest).
image:
	python3 scripts/build_image.py $(ARGS)

# uv pins every dependency of the image but torch (installed by the Dockerfile from the PyTorch index
# of its variant), with hashes, for the oldest Python the image is built on (3.11.2: Debian bookworm's,
# the stand-in base of scripts/build_image.py) and torch's CPU build. Without the PyTorch index (as
# here): make lock LOCK_TORCH="--find-links <folder holding the torch-2.13.0+cpu wheel>"
LOCK_TORCH ?= --torch-backend cpu
lock: setup
	$(VENV)/bin/uv pip compile --quiet --generate-hashes --no-emit-package torch --no-annotate \
	  --python-version 3.11.2 --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" \
	  $(LOCK_TORCH) $(ARGS) -o $(LOCK) model/requirements.in

# The data command is standard-library Python: no venv needed (CI's deploy job runs it too).
data:
	python3 -m model.download $(ARGS)

# The data command prints the archive it found or fetched (data/, ../shared/data, $$IMDB_DATA).
train: setup
	data="$$($(PY) -m model.download)" && $(PY) -m model.train --data "$$data" --model-dir artifacts/model $(ARGS)

evaluate: setup
	$(PY) -m model.evaluate --model-dir artifacts/model $(ARGS)

synth: $(CDK_STAMP) node_modules/.bin/cdk
	npx cdk synth $(ARGS)

deploy: $(CDK_STAMP) node_modules/.bin/cdk
	npx cdk deploy --all --require-approval never $(ARGS)

destroy: $(CDK_STAMP) node_modules/.bin/cdk
	npx cdk destroy --all --force $(ARGS)

clean:
	rm -rf cdk.out .pytest_cache test-artifacts
