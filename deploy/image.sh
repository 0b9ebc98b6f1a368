#!/bin/sh
# Assembles tapline's container build context in DIR: deploy/Dockerfile,
# the binary built by deploy/build.sh for linux/$GOARCH (default arm64,
# the stack's Graviton tasks) and the default rules. The CDK stack builds
# its image from DIR; `make build-check` builds it with podman.
# Usage: deploy/image.sh DIR
set -eu
dir=$1
rm -rf "$dir"
mkdir -p "$dir"
GOARCH=${GOARCH:-arm64} deploy/build.sh "$dir/tapline" ./cmd/tapline
cp deploy/Dockerfile "$dir/Dockerfile"
cp cmd/internal/demo/rules.yml "$dir/rules.yml"
