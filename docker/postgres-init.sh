#!/usr/bin/env bash
# Runs once, on the FIRST start of the postgres container with an empty data
# volume (files in /docker-entrypoint-initdb.d are ignored once the cluster
# exists).  To re-run it: `docker compose down -v` (destroys the data!), or run
# docker/db-roles.sql by hand as the superuser (it is idempotent; that is also
# how a volume from before the owner/app split is upgraded).
#
# Creates the helpdesk database and its two roles (docker/db-roles.sql, the
# same script `make test` runs):
#   helpdesk_owner  owns the database and its tables; the `migrate` service
#                   logs in as it (DATABASE_MIGRATE_URL)
#   helpdesk_app    what web, worker and beat connect as (DATABASE_URL): it may
#                   only read and write rows, so it cannot alter or drop a
#                   policy, switch off row-level security or TRUNCATE
# Neither is a superuser or BYPASSRLS.
#
# The passwords are passed in by docker-compose.yml and go through psql
# variables, so quotes or other special characters in them cannot break or
# inject SQL.
set -euo pipefail

: "${HELPDESK_APP_PASSWORD:?HELPDESK_APP_PASSWORD must be set}"
: "${HELPDESK_OWNER_PASSWORD:?HELPDESK_OWNER_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 -q \
     --username "$POSTGRES_USER" \
     --dbname "$POSTGRES_DB" \
     -v owner_role=helpdesk_owner \
     -v owner_password="$HELPDESK_OWNER_PASSWORD" \
     -v app_role=helpdesk_app \
     -v app_password="$HELPDESK_APP_PASSWORD" \
     -v database=helpdesk \
     -f /helpdesk/db-roles.sql
