#!/bin/sh
# Starts a data node of the compose set's Sentinel or Cluster topology with its users (passwords
# from the environment; no spaces in them), then runs the image's own entrypoint:
#   default   off
#   limiter   the documented ACL (docs/security.md) (REDIS_LIMITER_EXTRA adds the Cluster commands on Cluster nodes)
#   replica   replication only: every node follows its master as this user (a master can become
#             a replica after a failover)
#   sentinel  what Sentinel needs on a data node
#   admin     everything: health checks, cluster creation, the drills
set -eu
acl=/tmp/users.acl
cat > "$acl" <<ACL
user default off
user limiter on >${REDIS_LIMITER_PASSWORD} ~rl:* resetchannels -@all +evalsha +eval +time +get +set +del +pexpire +pttl +incr +incrby +decrby +pexpireat +zadd +zcard +zrange +zrangebyscore +zrem +zremrangebyscore +ping +info ${REDIS_LIMITER_EXTRA:-}
user replica on >${REDIS_REPLICA_PASSWORD} resetchannels -@all +psync +replconf +ping
user sentinel on >${REDIS_SENTINEL_PASSWORD} allchannels -@all +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill
user admin on >${REDIS_ADMIN_PASSWORD} ~* &* +@all
ACL
chmod 644 "$acl"
exec sh /usr/local/bin/docker-entrypoint.sh "$@" --aclfile "$acl" --masteruser replica --masterauth "$REDIS_REPLICA_PASSWORD"
