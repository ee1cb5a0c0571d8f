# make lab   -- install into .venv and start JupyterLab with the container kernel as its default
# make test  -- install the test extras into .venv and run the whole suite
SHELL := /bin/bash
# Debian's own Python: a venv made from it is usable by every user (rootless tests)
# and by the container's host rootfs (it lives under /usr, not under a 0700 home).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: lab test venv test-v2 bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) tools/check_prereqs.py venv
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[lab,test]' --config-settings editable_mode=compat
	@touch $@

# Byte-compile ahead: with PYTHONDONTWRITEBYTECODE set, every container start would
# otherwise recompile the runtime (~20 ms).
compile: venv
	@$(PY) -m compileall -q container_kernel tests >/dev/null

lab: venv compile
	$(VENV)/bin/container-kernel install --sys-prefix --default
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks --ip=127.0.0.1 \
	    $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

test: venv compile
	@$(PY) tools/check_prereqs.py test
	$(PY) -m pytest $(PYTEST_ARGS)

# The cgroup tests again inside a throw-away cgroup-v2-only VM (tests/vm/); fails, not skips,
# when qemu or a kernel is missing.
test-v2: venv compile
	CK_REQUIRE_V2_VM=1 $(PY) -m pytest -s tests/vm $(PYTEST_ARGS)

bench: venv compile
	$(PY) benchmarks/bench_run.py

clean:
	rm -rf $(VENV) build *.egg-info
