# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432
PG_SUPERUSER ?= postgres
APP_ROLE ?= helpdesk_app
OWNER_ROLE ?= helpdesk_owner

# The suite runs as the app's own role: not superuser, not BYPASSRLS, not the tables' owner, so
# row-level security binds and policies cannot be changed. The owner creates and migrates the
# test database (DATABASE_MIGRATE_URL; tests/conftest.py).
TEST_ENV := DJANGO_SECRET_KEY=test-secret-key DJANGO_DEBUG=false DJANGO_SECURE_COOKIES=false \
	DJANGO_SECURE_SSL_REDIRECT=false \
	DATABASE_URL=postgres://$(APP_ROLE)@$(PG_HOST):$(PG_PORT)/helpdesk \
	DATABASE_MIGRATE_URL=postgres://$(OWNER_ROLE)@$(PG_HOST):$(PG_PORT)/helpdesk \
	REDIS_URL=redis://127.0.0.1:6379/15 CELERY_TASK_ALWAYS_EAGER=true \
	HELPDESK_FERNET_KEYS=tCyP9ObJKmX3o6ghLqXbhpYl5ohhHYAygCfPFsUaNsE=

DEV_ENV := DJANGO_DEBUG=true

.PHONY: run test lint format install lock db-role bench bench-ingest bench-routing bench-db bench-data \
	bench-dashboard bench-inbox bench-api bench-peer bench-import bench-webhooks bench-ws \
	bench-scaling clean smtp

# Installs the exact versions of requirements-dev.lock (the tested combination), then the
# project itself without resolving anything again.
$(STAMP): pyproject.toml requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

# After changing dependencies in pyproject.toml: pin them again (commit both files).
LOCK_FLAGS := --quiet --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe
lock: $(STAMP)
	$(BIN)/pip-compile $(LOCK_FLAGS) -o requirements.lock pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra dev -o requirements-dev.lock pyproject.toml

install: $(STAMP)

run: $(STAMP)
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEV_ENV) $(BIN)/python manage.py seed_demo
	$(DEV_ENV) $(BIN)/python manage.py runserver 127.0.0.1:8000

# The inbound SMTP service for forwarding addresses, beside `make run` (same database):
# mail to <merchant>+<token>@inbound.localhost on 127.0.0.1:2525 becomes tickets, e.g.
# `swaks --server 127.0.0.1:2525 --to ADDRESS` with an address from a channel's settings page.
smtp: $(STAMP)
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEV_ENV) $(BIN)/python manage.py serve_smtp

# The owner and app roles and the `helpdesk` database (the same script docker compose runs).
db-role:
	@psql -h $(PG_HOST) -p $(PG_PORT) -U $(PG_SUPERUSER) -d postgres -qAt \
		-v owner_role=$(OWNER_ROLE) -v owner_password=helpdesk \
		-v app_role=$(APP_ROLE) -v app_password=helpdesk \
		-v database=helpdesk -f docker/db-roles.sql >/dev/null

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) lint db-role
	$(TEST_ENV) DATABASE_URL=sqlite:///:memory: $(BIN)/python manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

# Email ingest alone: messages/s, latencies, statements per message (bench/README.md).
bench-ingest: $(STAMP) db-role
	$(TEST_ENV) $(BIN)/python manage.py migrate --noinput -v0
	$(TEST_ENV) REDIS_URL=redis://127.0.0.1:6379/14 $(BIN)/python bench/ingest.py $(BENCH_ARGS)

# import_mail on generated mboxes of 5,000 and 50,000 messages: messages/s and peak memory.
bench-import: $(STAMP) db-role
	$(TEST_ENV) $(BIN)/python manage.py migrate --noinput -v0
	$(TEST_ENV) REDIS_URL=redis://127.0.0.1:6379/14 $(BIN)/python bench/import_mail.py $(BENCH_ARGS)

# The p99 time to answer a WeChat push (a live uvicorn server) while email ingest runs at full speed.
bench-webhooks: $(STAMP) db-role
	$(TEST_ENV) $(BIN)/python manage.py migrate --noinput -v0
	$(TEST_ENV) REDIS_URL=redis://127.0.0.1:6379/14 $(BIN)/python bench/webhooks.py $(BENCH_ARGS)

bench-routing: $(STAMP) db-role
	$(TEST_ENV) $(BIN)/python manage.py migrate --noinput -v0
	$(TEST_ENV) REDIS_URL=redis://127.0.0.1:6379/14 $(BIN)/python bench/routing.py $(BENCH_ARGS)

# 1,000 chat widgets' sockets held open on uvicorn (channels-redis), and a visitor's message to
# an agent's socket: p50/p95 (bench/README.md).
bench-ws: $(STAMP) db-role
	$(TEST_ENV) $(BIN)/python manage.py migrate --noinput -v0
	$(TEST_ENV) REDIS_URL=redis://127.0.0.1:6379/14 $(BIN)/python bench/ws.py $(BENCH_ARGS)

# The 1M-ticket benchmarks use a database of their own, so the dev and test databases stay small
# (bench/README.md: about 2.1 GB for 1.1M tickets).
BENCH_DB ?= helpdesk_bench
BENCH_REDIS_DB ?= 14
BENCH_ENV := $(TEST_ENV) \
	DATABASE_URL=postgres://$(APP_ROLE)@$(PG_HOST):$(PG_PORT)/$(BENCH_DB) \
	DATABASE_MIGRATE_URL=postgres://$(OWNER_ROLE)@$(PG_HOST):$(PG_PORT)/$(BENCH_DB) \
	REDIS_URL=redis://127.0.0.1:6379/$(BENCH_REDIS_DB)
BENCH_DATA_ARGS ?= --tickets 1000000 --tenant bench-1m --tenants 100

bench-db: $(STAMP) db-role
	@psql -h $(PG_HOST) -p $(PG_PORT) -U $(PG_SUPERUSER) -d postgres -qAt \
		-v owner_role=$(OWNER_ROLE) -v owner_password=helpdesk \
		-v app_role=$(APP_ROLE) -v app_password=helpdesk \
		-v database=$(BENCH_DB) -f docker/db-roles.sql >/dev/null
	$(BENCH_ENV) $(BIN)/python manage.py migrate --noinput -v0

bench-data: bench-db
	$(BENCH_ENV) $(BIN)/python -m bench.generate $(BENCH_DATA_ARGS)

bench-dashboard: bench-db
	$(BENCH_ENV) $(BIN)/python -m bench.dashboard $(BENCH_ARGS)

bench-inbox: bench-db
	$(BENCH_ENV) $(BIN)/python -m bench.inbox $(BENCH_ARGS)

# The REST API with API keys: the ticket list's p95 at a million tickets (bench/README.md).
bench-api: bench-db
	$(BENCH_ENV) $(BIN)/python -m bench.api $(BENCH_ARGS)

# Ingest side by side with django-helpdesk 2.6.1 (its own virtualenv under .bench/, from PyPI).
bench-peer: bench-db
	$(BENCH_ENV) $(BIN)/python bench/peer.py $(BENCH_ARGS)

# Inbound mail over HTTP with 1, 2 and 4 uvicorn and Celery processes: answers/s, filed/s and
# memory per process (bench/README.md, docs/scaling.md). Its own Redis db: SCALING_REDIS_DB.
SCALING_REDIS_DB ?= 14
bench-scaling: bench-db
	$(BENCH_ENV) REDIS_URL=redis://127.0.0.1:6379/$(SCALING_REDIS_DB) \
		$(BIN)/python bench/scaling.py $(BENCH_ARGS)

# Every benchmark at one scale (small: minutes; full: a million tickets, the figures of
# docs/performance.md): data, each bench, bench/results/bench-<scale>-<time>.json and a markdown
# table of the headlines against their targets. BENCH_ARGS: --only, --skip, --markdown PATH.
SCALE ?= small
bench: bench-db
	$(BENCH_ENV) $(BIN)/python -m bench.run --scale $(SCALE) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles
