#!/bin/sh
# Each sentinel rewrites its own config: render a private, writable copy of the template. With
# REDIS_SENTINEL_PASSWORD, the sentinel logs in to the data nodes as their "sentinel" user.
set -eu
conf=/tmp/sentinel.conf
sed "s/__DOWN_AFTER__/${DOWN_AFTER_MS:-2000}/" /sentinel/sentinel.conf.template > "$conf"
echo "sentinel announce-ip ${SELF}" >> "$conf"
if [ -n "${REDIS_SENTINEL_PASSWORD:-}" ]; then
  echo "sentinel auth-user mymaster sentinel" >> "$conf"
  echo "sentinel auth-pass mymaster ${REDIS_SENTINEL_PASSWORD}" >> "$conf"
fi
exec redis-sentinel "$conf"
