# First use creates .venv with the pinned CPU environment (requirements/ci.txt) and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# OpenCV's GUI build beside the venv (not in it: it would shadow the headless build), for the window test under Xvfb
OPENCV_GUI := $(VENV)/opencv-gui
OPENCV_VERSION := $(shell sed -n 's/^opencv-python-headless==//p' requirements/ci.txt)

.PHONY: demo test bench pictures clean-venv

$(VENV)/.installed: requirements/ci.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/ci.txt
	@# setuptools warns at length that a flat layout's folders shadow the installed packages: here they are them
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# the bundled clip through the pipeline; --exist-ok: every run writes (overwrites) runs/webcam/
demo: $(VENV)/.installed
	$(PY) demos/webcam.py --no-show --exist-ok

$(OPENCV_GUI)/.installed: requirements/ci.txt | $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps --target $(OPENCV_GUI) opencv-python==$(OPENCV_VERSION)
	touch $@

test: $(VENV)/.installed $(OPENCV_GUI)/.installed
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) -m kernels.bench

# the README's pictures (docs/img/): an annotated frame of the bundled clip and the CPU decode benchmark
pictures: $(VENV)/.installed
	$(PY) docs/pictures.py

clean-venv:
	rm -rf $(VENV)
