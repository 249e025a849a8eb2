# Two commands on a fresh machine:
#   make run    create .venv if missing, install lesiondx, run the main job
#   make test   create/update the same .venv with test extras, run the test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
HOST   ?= 127.0.0.1
PORT   ?= 8000
DICOM_PORT ?= 11112
STORAGE ?= runs/service

.PHONY: run test venv summary clean apt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip wheel

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# Main job: check the bundled examples, then serve the second-opinion service with the bundled models
# (web UI and REST API on http://$(HOST):$(PORT), DICOM C-STORE on port $(DICOM_PORT)).
run: venv
	$(BIN)/lesiondx data summary examples/aul_liver_us_mini examples/covid_ct_md_mini
	$(BIN)/lesiondx serve --host $(HOST) --port $(PORT) --storage $(STORAGE) --dicom-port $(DICOM_PORT)

summary: venv
	$(BIN)/lesiondx data summary examples/aul_liver_us_mini examples/covid_ct_md_mini

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# Debian packages some tests use (dcmtk's storescu, Orthanc, Chromium); tests skip with a reason without them.
apt:
	apt-get update && apt-get install -y --no-install-recommends $$(cat apt-packages.txt)

clean:
	rm -rf $(VENV) .pytest_cache
