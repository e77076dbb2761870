# The project's commands. `make test` is the one test command (CI runs it via .ci/run).
#   make test ARGS="-k server -x"   pass arguments through to pytest
VENV ?= .venv
export VENV
ARGS ?=

.PHONY: test lint demo venv

test:
	bash scripts/test.sh $(ARGS)

venv:
	bash scripts/test.sh --setup

lint: venv
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy

demo: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh
