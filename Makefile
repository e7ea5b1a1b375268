# The commands the README gives. NAMELAB_DATA points at a names folder; unset, namelab
# downloads and verifies the official archive into the user cache.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/namelab: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $@

setup: $(BIN)/namelab

demo: setup
	$(BIN)/namelab data
	$(BIN)/namelab train --model lstm --out runs/lstm
	$(BIN)/namelab predict runs/lstm Nakamura Schmidt O\'Brien Dvořák Papadopoulos

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/baseline.py

clean:
	rm -rf $(VENV) runs reports
