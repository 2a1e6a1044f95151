# The two entry points of the README: `make demo` and `make test`. Both set up a virtual
# environment on a fresh machine (idempotent: a stamp file records the installed state).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Debian packages: chromium renders HTML documents and reports headless; the fonts give
# Latin and CJK glyphs to synthetic OCR and documents. Installed when missing (as root).
SYSTEM_PACKAGES := chromium fonts-noto-cjk fonts-dejavu-core

.PHONY: demo test install clean bench sysdeps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, by its exact pin: the builds on this disk are found before any index is asked.
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[demo,test]"
	touch $(STAMP)

sysdeps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: missing system packages:$$missing (HTML rendering and report tests will be skipped)"; fi; \
	fi

install: $(STAMP) sysdeps

demo: $(STAMP) sysdeps
	$(BIN)/tessera demo --out demo_out

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo_out
