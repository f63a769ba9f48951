# The two commands of the README:
#   make quickstart   set up .venv, then train -> convert -> report -> demo on the synthetic dataset
#   make test         set up .venv, then run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: quickstart test setup browser test-deps lint clean

quickstart: $(STAMP)
	$(VENV)/bin/edge-deeplab quickstart --out quickstart

test: $(STAMP) browser test-deps
	$(PY) -m pytest -q -p no:cacheprovider

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all,dev]"
	rm -f $(VENV)/.installed-*
	touch $@

# The report's HTML test renders the page in a real headless Chromium (Debian's package);
# without root or apt the test skips with its reason instead.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed: the HTML screenshot test will skip"; }

# System packages of the device tests: OpenSSH (the loopback sshd of the remote-target tests and
# the one inside the emulated aarch64 device, tests/devices/arm64.py), QEMU 10 from
# bookworm-backports and mmdebstrap. Quiet and instant once installed; without root or apt the
# tests that need them skip with their reason.
test-deps:
	@bash tests/devices/install_host_packages.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) quickstart .pytest_cache
