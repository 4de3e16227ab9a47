#!/bin/sh
# A streaming replica: on first start copy the primary (pg_basebackup -R writes standby.signal
# and primary_conninfo), then run postgres.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -C -S replica1; do
    echo "waiting for the primary"; rm -rf "$PGDATA"; sleep 1
  done
  chmod 0700 "$PGDATA"
fi
exec postgres
