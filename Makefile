# The two commands of the quick start: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install install-dev lint format migrate seed clean bench backup restore

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
	@echo "  Demo logins (password 'demo'): admin (superuser), clinician, scheduler, auditor, patient"
	@echo "  Database: $${DATABASE_URL:-SQLite in var/}   Broker: $${REDIS_URL:-filesystem in var/}"
	@echo
	CLINIC_PORT=$(PORT) exec $(BIN)/honcho start -f Procfile.dev

# The whole suite against the local PostgreSQL and Redis (override with DATABASE_URL / REDIS_URL).
test: install-dev lint
	$(BIN)/python -m pytest

# The benchmark (docs/benchmarks.md): generated clinics of 2,000 and 20,000 patients in
# their own PostgreSQL databases (BENCH_DATABASE_URL, default clinic_bench_*), gunicorn,
# budgets as ratios to baselines of the same run. Exits non-zero if a budget is broken.
bench: install
	$(BIN)/python manage.py bench --settings=clinic.bench_settings

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Backups (README "Backups"). backup: pg_dump of the configured PostgreSQL database into
# CLINIC_BACKUP_DIR (var/backups/), mode 0600. restore: DUMP=file into an EMPTY database, the
# configured one or RESTORE_URL=postgres://user@host:port/name (password in PGPASSWORD, not
# the URL); it asks for confirmation unless YES=1. Never over live data: dropdb/createdb first.
backup:
	$(BIN)/python manage.py backup_db

restore:
	@test -n "$(DUMP)" || { echo "Usage: make restore DUMP=var/backups/<file>.dump [RESTORE_URL=postgres://user@host:port/name] [YES=1]" >&2; exit 2; }
	@$(BIN)/python manage.py restore_db "$(DUMP)" $(if $(RESTORE_URL),--database-url "$(RESTORE_URL)") $(if $(YES),--yes)

clean:
	rm -rf var staticfiles .pytest_cache .ruff_cache
