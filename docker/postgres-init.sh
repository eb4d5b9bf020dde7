#!/usr/bin/env bash
# Runs once, on the FIRST start of the postgres container with an empty data
# volume (files in /docker-entrypoint-initdb.d are ignored once the cluster
# exists).  To re-run it: `docker compose down -v` (destroys the data!).
#
# Creates the role the application connects as.  It is deliberately NOT a
# superuser and NOT BYPASSRLS, so PostgreSQL row-level security policies apply
# to it.  CREATEDB lets Django's test runner create its test database.
#
# NOTE: the role owns the database and, because `migrate` runs as this role,
# it also owns the tables.  PostgreSQL does not apply RLS to a table's owner
# unless the table has `ALTER TABLE ... FORCE ROW LEVEL SECURITY` - the
# migrations that enable RLS must also FORCE it.
#
# HELPDESK_APP_PASSWORD is passed in by docker-compose.yml (from the host's
# POSTGRES_PASSWORD).  It goes through a psql variable (:'app_password'), so
# quotes or other special characters in it cannot break or inject SQL.
set -euo pipefail

: "${HELPDESK_APP_PASSWORD:?HELPDESK_APP_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 \
     --username "$POSTGRES_USER" \
     --dbname "$POSTGRES_DB" \
     -v app_password="$HELPDESK_APP_PASSWORD" <<-'EOSQL'
	CREATE ROLE helpdesk_app LOGIN PASSWORD :'app_password'
	    NOSUPERUSER NOBYPASSRLS NOCREATEROLE CREATEDB;
	CREATE DATABASE helpdesk OWNER helpdesk_app;
EOSQL
