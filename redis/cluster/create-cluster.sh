#!/bin/sh
# One-shot: creates the cluster (3 masters, 1 replica each) unless it exists, waits until it is
# whole, and writes one key per master so that replicas appear in CLUSTER SLOTS. Connects as the
# nodes' "admin" user when REDIS_ADMIN_PASSWORD is set.
set -eu
cli() {
  if [ -n "${REDIS_ADMIN_PASSWORD:-}" ]; then
    redis-cli --user admin --pass "$REDIS_ADMIN_PASSWORD" --no-auth-warning "$@"
  else
    redis-cli "$@"
  fi
}
first=${CLUSTER_NODES%% *}
host=${first%:*}
if cli -h "$host" cluster info | grep -q '^cluster_state:ok'; then
  echo "cluster already created"
  exit 0
fi
# shellcheck disable=SC2086
cli --cluster create $CLUSTER_NODES --cluster-replicas 1 --cluster-yes
for node in $CLUSTER_NODES; do
  h=${node%:*}
  until cli -h "$h" cluster info | grep -q '^cluster_state:ok'; do sleep 0.2; done
done
for key in a b c; do cli -c -h "$host" set "{$key}warm" 1 px 1000 >/dev/null; done
echo "cluster ready"
