#!/bin/sh
# Runs once on the primary's first start: the app's own role (owner of the database "app", not a
# superuser), a replication role, its pg_hba line, and the replica's slot (created here, once, so
# that a replica recreated later reuses it instead of failing on "slot already exists").
set -eu
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<SQL
CREATE ROLE app WITH LOGIN PASSWORD '${APP_DB_PASSWORD}';
ALTER DATABASE app OWNER TO app;
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '${REPLICATION_PASSWORD}';
SELECT pg_create_physical_replication_slot('replica1');
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "SELECT pg_reload_conf()"
