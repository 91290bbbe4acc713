#!/usr/bin/env bash
# Builds the real-client test tools from Debian's packaged Go sources, offline (GOPATH mode,
# no module proxy): libclient (container-library-client 1.2.2), orasclient (oras-go 1.1.1),
# regauth (token server for docker-registry) and sifsign (upstream SIF integrity code).
# Skips a tool whose binary is newer than its sources.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)

# Debian ships sylabs/sif v2 without a /v2 directory: a throwaway GOPATH entry provides it.
GP=${SHELF_GOPATH:-/tmp/shelf-gopath}
mkdir -p "$GP/src/github.com/sylabs/sif"
ln -sfn /usr/share/gocode/src/github.com/sylabs/sif "$GP/src/github.com/sylabs/sif/v2"

export GO111MODULE=off GOPATH="$GP:/usr/share/gocode" GOFLAGS= GOPROXY=off
export GOCACHE=${GOCACHE:-/tmp/shelf-gocache}
mkdir -p "$HERE/bin"
for tool in libclient orasclient regauth sifsign keyclient; do
  [ -d "$HERE/$tool" ] || continue
  bin="$HERE/bin/$tool"
  if [ -x "$bin" ] && [ -z "$(find "$HERE/$tool" -newer "$bin" -type f)" ]; then continue; fi
  (cd "$HERE/$tool" && go build -trimpath -o "$bin" .)
  echo "built bin/$tool" >&2
done
