# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# CPU wheel by default; a torch already in .venv (e.g. a CUDA build) is kept
TORCH  ?= torch==2.13.0

.PHONY: venv test test-avx2 demo clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# two pytest workers (pytest-xdist), each test file in one of them so its module fixtures are made once:
# 6.4 min instead of ~10.5 on this project's 2-core machine
TEST_WORKERS ?= 2

test: venv
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# the numerics tests again as on an AVX2-only CPU: oneDNN, ATen and MKL limited to AVX2, so bf16
# is emulated and `trainer.precision: auto` picks fp32 (docs/hardware.md)
test-avx2: venv
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 $(BIN)/python -m pytest -q -m numerics -n $(TEST_WORKERS) --dist loadfile

demo: venv
	$(BIN)/fpar demo --out demo-output

clean:
	rm -rf $(VENV) demo-output .pytest_cache
