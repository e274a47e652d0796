#!/usr/bin/env bash
# Installs the native binaries of the lab's services on Debian/Ubuntu:
# PostgreSQL, Redis, Prometheus and wrk from apt; the Toxiproxy server (a Go
# program, packaged by neither Debian nor PyPI) with `go install` at a pinned
# version, into .lab/bin/toxiproxy-server. Idempotent.
set -euo pipefail
TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.12.0}"
BIN_DIR="${LAB_HOME:-.lab}/bin"

if ! command -v apt-get >/dev/null 2>&1; then
  echo "This installer knows Debian/Ubuntu (apt-get). Elsewhere install PostgreSQL 15+, Redis, Prometheus and wrk" >&2
  echo "with your package manager, and Toxiproxy with: GOBIN=$BIN_DIR go install github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$BIN_DIR"
# `go install` embeds no version in the binary: a stamp file records it.
if [ ! -x "$BIN_DIR/toxiproxy-server" ] || [ "$(cat "$BIN_DIR/toxiproxy-server.version" 2>/dev/null)" != "$TOXIPROXY_VERSION" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "Toxiproxy needs Go 1.22+ to build: install it (apt-get install golang-go, or from go.dev), then rerun 'make services'" >&2
    exit 1
  fi
  echo "go install toxiproxy server $TOXIPROXY_VERSION"
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "$tmp/server" "$BIN_DIR/toxiproxy-server"
  echo "$TOXIPROXY_VERSION" > "$BIN_DIR/toxiproxy-server.version"
  rm -rf "$tmp"
fi
echo "services installed: postgres $(pg_config --version | awk '{print $2}'), redis $(redis-server --version | awk "{print \$3}" | cut -d= -f2), prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), toxiproxy $(cat "$BIN_DIR/toxiproxy-server.version")"
