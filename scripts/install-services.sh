#!/usr/bin/env bash
# Installs the native binaries of the lab's services on Debian/Ubuntu:
# PostgreSQL, Redis, Prometheus, wrk and nginx (the reverse proxy of release
# scenarios, started per run by the lab: the package's own service stays off) from apt; the Toxiproxy server (a Go
# program, packaged by neither Debian nor PyPI) with `go install` at a pinned
# version, into .lab/bin/toxiproxy-server; vegeta (the open-model load tool
# that tests/integration/test_open_model.py holds the lab's open model
# against) the same way, into .lab/bin/vegeta. Idempotent.
set -euo pipefail
TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.12.0}"
VEGETA_VERSION="${VEGETA_VERSION:-v12.13.0}"
BIN_DIR="${LAB_HOME:-.lab}/bin"

if ! command -v apt-get >/dev/null 2>&1; then
  echo "This installer knows Debian/Ubuntu (apt-get). Elsewhere install PostgreSQL 15+, Redis, Prometheus, wrk and nginx" >&2
  echo "with your package manager, Toxiproxy with: GOBIN=$BIN_DIR go install github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" >&2
  echo "and vegeta with: GOBIN=$BIN_DIR go install github.com/tsenart/vegeta/v12@$VEGETA_VERSION" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# nginx-light: the proxy module and little else. Not on a non-root PATH: /usr/sbin.
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  echo "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  # No package may start its service (nginx's would listen on port 80 of every
  # interface): the lab starts each service itself, on loopback. policy-rc.d is
  # Debian's switch for that; one that was there already is kept.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$BIN_DIR"

# go_install NAME MODULE VERSION BUILT: `go install MODULE@VERSION` into $BIN_DIR/NAME,
# unless that version is there already. `go install` embeds no version in the binary:
# a stamp file (NAME.version) records it. BUILT is the name go gives the binary.
go_install() {
  local name=$1 module=$2 version=$3 built=$4
  if [ -x "$BIN_DIR/$name" ] && [ "$(cat "$BIN_DIR/$name.version" 2>/dev/null)" = "$version" ]; then
    return
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "$name needs Go 1.22+ to build: install it (apt-get install golang-go, or from go.dev), then rerun 'make services'" >&2
    exit 1
  fi
  echo "go install $name $version"
  local tmp
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "$module@$version"
  mv "$tmp/$built" "$BIN_DIR/$name"
  echo "$version" > "$BIN_DIR/$name.version"
  rm -rf "$tmp"
}

go_install toxiproxy-server github.com/Shopify/toxiproxy/v2/cmd/server "$TOXIPROXY_VERSION" server
# vegeta: the independent open-model load tool the lab's own open model is checked against.
go_install vegeta github.com/tsenart/vegeta/v12 "$VEGETA_VERSION" vegeta
echo "services installed: postgres $(pg_config --version | awk '{print $2}'), nginx $("$(command -v nginx || echo /usr/sbin/nginx)" -v 2>&1 | cut -d/ -f2), redis $(redis-server --version | awk "{print \$3}" | cut -d= -f2), prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), toxiproxy $(cat "$BIN_DIR/toxiproxy-server.version"), vegeta $(cat "$BIN_DIR/vegeta.version")"
