-- The deployment's database roles, least privilege (docs/OPERATIONS.md, "Roles and users").
-- Run as the superuser: psql -X -v ON_ERROR_STOP=1 -d postgres -f roles.sql, with PGPASSWORD and
-- SCHEDGEN_PG_{OWNER,APP,EXPORTER}_PASSWORD in the environment. Idempotent: it creates what is missing and
-- re-applies attributes, memberships and passwords on every run (so a rotated password takes effect).
--   schedgen: owns the database; CREATEDB and member of schedgen_app: pg_dump, pg_restore, scratch restores
--   schedgen_app: the service; owns only the schema schedgen_app
--   schedgen_exporter: postgres_exporter; pg_monitor only
\set ON_ERROR_STOP on
SET client_min_messages = warning;
\set owner 'schedgen'
\set app 'schedgen_app'
\set exporter 'schedgen_exporter'
\set schema 'schedgen_app'
\set database 'schedgen'
\getenv owner_password SCHEDGEN_PG_OWNER_PASSWORD
\getenv app_password SCHEDGEN_PG_APP_PASSWORD
\getenv exporter_password SCHEDGEN_PG_EXPORTER_PASSWORD
\if :{?owner_password}
\if :{?app_password}
\if :{?exporter_password}
SELECT length(:'owner_password') > 0 AND length(:'app_password') > 0 AND length(:'exporter_password') > 0
    AS passwords_set \gset
\else
\set passwords_set false
\endif
\else
\set passwords_set false
\endif
\else
\set passwords_set false
\endif
\if :passwords_set
\else
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: SCHEDGEN_PG_OWNER_PASSWORD, SCHEDGEN_PG_APP_PASSWORD and SCHEDGEN_PG_EXPORTER_PASSWORD must be set'; END $$;
\endif

SELECT format('CREATE ROLE %I', name) FROM unnest(ARRAY[:'owner', :'app', :'exporter']) AS name
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD %L',
              :'owner', :'owner_password') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD %L',
              :'app', :'app_password') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD %L',
              :'exporter', :'exporter_password') \gexec
-- The app and the exporter belong to nothing but what is granted here; the owner acts as the app.
SELECT format('REVOKE %I FROM %I', m.roleid::regrole, m.member::regrole)
  FROM pg_auth_members m
 WHERE m.member IN (SELECT oid FROM pg_roles WHERE rolname IN (:'app', :'exporter'))
   AND NOT (m.member::regrole::text = quote_ident(:'exporter') AND m.roleid::regrole::text = 'pg_monitor') \gexec
SELECT format('GRANT %I TO %I', :'app', :'owner') WHERE NOT pg_has_role(:'owner', :'app', 'MEMBER') \gexec
SELECT format('GRANT pg_monitor TO %I', :'exporter') WHERE NOT pg_has_role(:'exporter', 'pg_monitor', 'MEMBER') \gexec
-- The owner's sessions (backups, psql by hand) see the app's tables without a schema prefix.
SELECT format('ALTER ROLE %I SET search_path = %I, public', :'owner', :'schema') \gexec

SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'database') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'database', :'owner') \gexec

\connect :database
SET client_min_messages = warning;
SELECT format('CREATE SCHEMA %I AUTHORIZATION %I', :'schema', :'app')
 WHERE NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :'schema') \gexec
SELECT format('ALTER SCHEMA %I OWNER TO %I', :'schema', :'app') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- An older layout kept the tables in public, owned by the owner: move them into the app's schema once.
SELECT format('ALTER TABLE public.%I SET SCHEMA %I', tablename, :'schema') FROM pg_tables
 WHERE schemaname = 'public'
   AND EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tablename = 'schema_migrations')
   AND to_regclass(format('%I.schema_migrations', :'schema')) IS NULL \gexec
SELECT format('ALTER TABLE %I.%I OWNER TO %I', schemaname, tablename, :'app') FROM pg_tables
 WHERE schemaname = :'schema' AND tableowner <> :'app' \gexec
