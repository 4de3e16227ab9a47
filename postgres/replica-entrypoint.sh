#!/bin/sh
# A streaming replica: on first start copy the primary (pg_basebackup -R writes standby.signal
# and primary_conninfo) through the slot the primary created at its initialisation, then run
# postgres. The slot is never created here, so a replica recreated (or a copy that failed
# half-way) simply starts again.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -S replica1; do
    echo "waiting for the primary"; rm -rf "$PGDATA"; sleep 1
  done
  chmod 0700 "$PGDATA"
fi
exec postgres
