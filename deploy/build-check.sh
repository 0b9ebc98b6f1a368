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
go version -m "$dir/a" | grep -q 'golang.org/x/crypto/x509roots/fallback' || { echo "build-check: no CA roots compiled in (the image has none)" >&2; exit 1; }
echo "build-check: static, reproducible ($(wc -c < "$dir/a") bytes), version stamped, CA roots compiled in"

# The image itself, FROM scratch, built offline with podman in storage of
# its own (containers cannot run here: its configuration is checked).
[ "$(grep -c '^FROM' deploy/Dockerfile)" = 1 ] && grep -q '^FROM scratch$' deploy/Dockerfile || { echo "build-check: the image must be FROM scratch alone" >&2; exit 1; }
GOARCH=$(go env GOARCH) deploy/image.sh "$dir/context"
podman="podman --root $dir/storage --runroot $dir/run --storage-driver vfs"
$podman build --isolation chroot --format docker --quiet -t tapline:check "$dir/context" >/dev/null
got=$($podman image inspect tapline:check --format '{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.Healthcheck.Test}} {{.Size}}')
case "$got" in
  '65532:65532 ["/tapline"] ["run"] ["CMD","/tapline","healthcheck"] '*) ;;
  *) echo "build-check: image configuration $got" >&2; exit 1 ;;
esac
echo "build-check: image FROM scratch built, user 65532, /tapline run, ${got##* } bytes"
