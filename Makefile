# The commands the README gives. NAMELAB_DATA points at a names folder; unset, namelab
# downloads and verifies the official archive into the user cache.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean default-model

$(BIN)/namelab: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,test,bench]'
	touch $@

setup: $(BIN)/namelab

# The experiment: RNN, LSTM and GRU over 3 seeds on the real dataset, then the accuracy
# suite (n-gram baseline, best single model, best ensemble) on the same split and seeds,
# then the report.
demo: setup
	$(BIN)/namelab compare --suite seed,accuracy,realworld --out reports/compare
	@echo "report: $(CURDIR)/reports/compare/report.html"
	@echo "try the models it trained in a browser: $(BIN)/namelab serve reports/compare"

# The model shipped in the package (namelab predict Nakamura, namelab.predict): --preset best
# trained on the names folder's train split, its test figures in its model card.
default-model: setup
	$(BIN)/namelab train --preset best --out src/namelab/default_model --force

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/speed.py $(addprefix --run ,$(wildcard reports/compare/runs/best-seed0))
	$(BIN)/python bench/baseline.py --runs $(wildcard reports/compare/runs/rnn-seed* reports/compare/runs/lstm-seed* reports/compare/runs/gru-seed*)
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) runs reports
