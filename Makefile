# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# CPU wheel by default; a torch already in .venv (e.g. a CUDA build) is kept
TORCH  ?= torch==2.13.0

.PHONY: venv test demo clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/fpar demo --out demo-output

clean:
	rm -rf $(VENV) demo-output .pytest_cache
