#!/bin/sh
# Builds a tapline binary the way the container does: static (no cgo),
# reproducible (-trimpath, no build id, no VCS stamp), version stamped.
# Used by deploy/Dockerfile and by `make build-check`, so the two cannot
# drift. Usage: deploy/build.sh OUT [PACKAGE] (default ./cmd/tapline).
set -eu
out=$1
pkg=${2:-./cmd/tapline}
version=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
CGO_ENABLED=0 GOOS=${GOOS:-linux} GOARCH=${GOARCH:-$(go env GOARCH)} \
  go build -trimpath -buildvcs=false -ldflags "-s -w -buildid= -X main.version=${version}" -o "$out" "$pkg"
