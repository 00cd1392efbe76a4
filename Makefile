# The two commands of the quick start: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install install-dev lint format migrate seed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Development server with a real Celery worker and beat. Without DATABASE_URL /
# REDIS_URL it runs embedded (SQLite and a filesystem broker under var/).
run: export DJANGO_DEBUG ?= true
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo
	@echo "  Ketamine clinic tracker: http://127.0.0.1:$(PORT)/"
	@echo "  Admin:                   http://127.0.0.1:$(PORT)/admin/"
	@echo "  Health:                  http://127.0.0.1:$(PORT)/health/"
	@echo "  Demo logins (password 'demo'): admin (superuser), clinician, scheduler, patient"
	@echo "  Database: $${DATABASE_URL:-SQLite in var/}   Broker: $${REDIS_URL:-filesystem in var/}"
	@echo
	CLINIC_PORT=$(PORT) exec $(BIN)/honcho start -f Procfile.dev

# The whole suite against the local PostgreSQL and Redis (override with DATABASE_URL / REDIS_URL).
test: install-dev lint
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var staticfiles .pytest_cache .ruff_cache
