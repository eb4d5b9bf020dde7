# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432
PG_SUPERUSER ?= postgres
APP_ROLE ?= helpdesk_app

# The suite runs as the app's own role: not superuser, not BYPASSRLS, so row-level security binds.
TEST_ENV := DJANGO_SECRET_KEY=test-secret-key DJANGO_DEBUG=false DJANGO_SECURE_COOKIES=false \
	DJANGO_SECURE_SSL_REDIRECT=false \
	DATABASE_URL=postgres://$(APP_ROLE)@$(PG_HOST):$(PG_PORT)/helpdesk \
	REDIS_URL=redis://127.0.0.1:6379/15 CELERY_TASK_ALWAYS_EAGER=true \
	HELPDESK_FERNET_KEYS=tCyP9ObJKmX3o6ghLqXbhpYl5ohhHYAygCfPFsUaNsE=

DEV_ENV := DJANGO_DEBUG=true

.PHONY: run test lint format install db-role bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEV_ENV) $(BIN)/python manage.py seed_demo
	$(DEV_ENV) $(BIN)/python manage.py runserver 127.0.0.1:8000

db-role:
	@psql -h $(PG_HOST) -p $(PG_PORT) -U $(PG_SUPERUSER) -d postgres -tAc \
		"SELECT 1 FROM pg_roles WHERE rolname = '$(APP_ROLE)'" | grep -q 1 || \
	psql -h $(PG_HOST) -p $(PG_PORT) -U $(PG_SUPERUSER) -d postgres -qc \
		"CREATE ROLE $(APP_ROLE) LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS PASSWORD 'helpdesk'"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) lint db-role
	$(TEST_ENV) DATABASE_URL=sqlite:///:memory: $(BIN)/python manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) db-role
	@psql -h $(PG_HOST) -p $(PG_PORT) -U $(PG_SUPERUSER) -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'helpdesk'" | grep -q 1 || \
	createdb -h $(PG_HOST) -p $(PG_PORT) -U $(APP_ROLE) helpdesk
	$(TEST_ENV) $(BIN)/python manage.py migrate --noinput -v0
	$(TEST_ENV) REDIS_URL=redis://127.0.0.1:6379/14 $(BIN)/python bench/ingest.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles
