#!/bin/sh
# What CI can check of the container without docker: the Dockerfile's build
# step (deploy/build.sh) gives a static Linux binary, two builds are
# byte-identical, and the binary runs and reports its version.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
VERSION=check deploy/build.sh "$dir/a"
VERSION=check deploy/build.sh "$dir/b"
info=$(file "$dir/a")
case "$info" in
  *"statically linked"*) ;;
  *) echo "build-check: not a static binary: $info" >&2; exit 1 ;;
esac
if ldd "$dir/a" >/dev/null 2>&1; then
  echo "build-check: ldd found dynamic dependencies" >&2; exit 1
fi
cmp "$dir/a" "$dir/b" || { echo "build-check: two builds differ" >&2; exit 1; }
[ "$("$dir/a" version)" = "tapline check" ] || { echo "build-check: version not stamped" >&2; exit 1; }
grep -q 'RUN VERSION=${VERSION} deploy/build.sh /out/tapline ./cmd/tapline' deploy/Dockerfile || { echo "build-check: the Dockerfile no longer builds with deploy/build.sh" >&2; exit 1; }
echo "build-check: static, reproducible ($(wc -c < "$dir/a") bytes), version stamped"
