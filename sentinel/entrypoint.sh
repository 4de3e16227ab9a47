#!/bin/sh
# Each sentinel rewrites its own config: render a private, writable copy of the template.
set -eu
conf=/tmp/sentinel.conf
sed "s/__DOWN_AFTER__/${DOWN_AFTER_MS:-2000}/" /sentinel/sentinel.conf.template > "$conf"
echo "sentinel announce-ip ${SELF}" >> "$conf"
exec redis-sentinel "$conf"
