# The two commands of the README: `make demo` and `make test`. The shell scripts in bin/ do the preparing.

VENV := .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
# The demo's ports: `make demo WEB_PORT=8001 SANDBOX_PORT=8766` when 8000 or 8765 is taken. Every address the demo
# uses (PUBLIC_BASE_URL, OAuth redirect URIs, the services' sandbox URLs) follows them: run_demo sets them all.
WEB_PORT ?= 8000
SANDBOX_PORT ?= 8765

.PHONY: help install demo stop test lint format clean distclean

help:
	@echo "make demo       install, write .env, migrate, seed and run the demo (Ctrl-C stops it)"
	@echo "                (WEB_PORT=8001 SANDBOX_PORT=8766 for other ports than 8000 and 8765)"
	@echo "make stop       stop this checkout's demo, or what a crashed one left running (var/demo/*.pid)"
	@echo "make test       install, start PostgreSQL/Redis if needed, run the whole test suite"
	@echo "                (PYTEST_ARGS='-k campaign' to run a part)"
	@echo "make lint       ruff check and ruff format --check"
	@echo "make format     ruff format and ruff check --fix"
	@echo "make clean      remove the demo database, media and caches (keeps .venv and .env)"
	@echo "make distclean  clean, and remove .venv and .env too"

install:
	@bash bin/setup-venv

# `run_demo --check` first: a port taken or a demo of this checkout still running stops it before seed_demo moves
# the demo's release time.
demo: install
	@bash bin/write-demo-env
	$(PYTHON) manage.py run_demo --check --web-port $(WEB_PORT) --sandbox-port $(SANDBOX_PORT)
	@mkdir -p var
	$(PYTHON) manage.py migrate --noinput -v 0
	$(PYTHON) manage.py createcachetable
	$(PYTHON) manage.py seed_demo
	$(PYTHON) manage.py run_demo --web-port $(WEB_PORT) --sandbox-port $(SANDBOX_PORT)

stop:
	@if [ -d var/demo ]; then $(PYTHON) manage.py run_demo --stop; else echo "No demo of this checkout is running."; fi

test: install
	@bash bin/ensure-chromium
	@bash bin/ensure-services
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var media staticfiles .pytest_cache .ruff_cache tests/artifacts
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .env
