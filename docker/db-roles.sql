-- The helpdesk database and its two roles. Idempotent: `make db-role` runs it before every
-- test run, and docker compose's postgres on its first start (docker/postgres-init.sh).
-- Run it as a superuser with psql, setting these variables (-v name=value):
--   owner_role, owner_password  owns the database and its tables and runs `manage.py migrate`
--                               (DATABASE_MIGRATE_URL); CREATEDB for the test suite's database
--   app_role, app_password      what the application connects as (DATABASE_URL): rows only;
--                               the owner's migrate grants it SELECT/INSERT/UPDATE/DELETE
--   database                    created, owned by owner_role, if missing
-- Neither role is a superuser or may bypass row-level security. A database the app role used
-- to own (before the roles were split) is handed to the owner, tables and all.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN NOCREATEDB', :'app_role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'owner_role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner_role') \gexec
SELECT format(
    'ALTER ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD %L',
    :'app_role', :'app_password'
) \gexec
SELECT format(
    'ALTER ROLE %I LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD %L',
    :'owner_role', :'owner_password'
) \gexec

-- The app's statements are short (OLTP): compiling one with JIT costs more than it saves, up to
-- seconds for the dashboard's grouped counts at a million tickets (bench/README.md).
SELECT format('ALTER ROLE %I SET jit = off', :'app_role') \gexec
-- Its tables are read from memory or SSD, where a random page costs little more than a
-- sequential one: with the default (4, for spinning disks) the planner reads a small
-- merchant's whole history and sorts it (38 ms) rather than walk the inbox's index to the first
-- page of matches (1 ms), bench/README.md. 1.1 is the usual setting for SSD storage.
SELECT format('ALTER ROLE %I SET random_page_cost = 1.1', :'app_role') \gexec

SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner_role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
-- Its test database too (Django's default name), so the owner may drop and create it again.
SELECT format('ALTER DATABASE %I OWNER TO %I', datname, :'owner_role')
FROM pg_database
WHERE datname IN (:'database', 'test_' || :'database') AND datdba = to_regrole(:'app_role') \gexec

\connect :"database"
-- ALTER TABLE also hands over the sequences its columns own.
SELECT format('ALTER TABLE %I.%I OWNER TO %I', schemaname, tablename, :'owner_role')
FROM pg_tables WHERE tableowner = :'app_role' \gexec

-- Search under row-level security (tickets/search.py, docs/workspace.md): PostgreSQL answers a
-- condition from an index before the tenant policy has filtered the rows only if its functions
-- are LEAKPROOF, so without this the full-text and trigram indexes are never used by the app's
-- role. These cannot reveal another merchant's rows: they raise no error that depends on a row
-- (search documents are capped at 64 KB, far below to_tsvector's 1 MB limit). Only a superuser
-- may say so, hence here and not in a migration.
ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
ALTER FUNCTION pg_catalog.to_tsvector(regconfig, text) LEAKPROOF;
ALTER FUNCTION pg_catalog.textlike(text, text) LEAKPROOF;
