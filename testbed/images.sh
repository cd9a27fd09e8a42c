#!/usr/bin/env bash
# Builds the testbed's container images as OCI image tarballs, by hand (no image builder: tar, sha256sum,
# JSON), and imports them into the testbed's containerd (namespace k8s.io), which never pulls.
#
#   images.sh          build (cached under $IMAGE_CACHE, keyed by the sources) and import
#   images.sh build    build only
#   images.sh list     the image names
#
# Images (tags are never `latest`, so the kubelet's default pull policy is IfNotPresent):
#   unloop.test/pause:3.10        the pod sandbox (containerd's sandbox_image)
#   unloop.test/app:1.0           busybox-static with its applets + /app/testapp 1.0 + /usr/bin/java (testapp)
#   unloop.test/app:2.0           the same with testapp 2.0, whose `serve` also requires CACHE_URL
#   unloop.test/static-app:1.0    only /app/testapp: no shell, no sleep
#   unloop.test/arm64-app:1.0     labelled linux/amd64 but /app/testapp is an arm64 build (exec format error)
source "$(dirname "$0")/lib/common.sh"

IMAGES=(unloop.test/pause:3.10 unloop.test/app:1.0 unloop.test/app:2.0 unloop.test/static-app:1.0 unloop.test/arm64-app:1.0)
SRC=$TESTBED_DIR/images
CREATED=2026-01-01T00:00:00Z

image_key() {
  { cat "$0" "$SRC/pause/pause.c" "$SRC/testapp/go.mod" "$SRC"/testapp/*.go; sha256sum /bin/busybox; go version; gcc --version | head -1; } |
    sha256sum | cut -c1-16
}

# blob FILE LAYOUT: stores FILE as a content-addressed blob, prints its digest.
blob() {
  local d
  d=$(sha256sum "$1" | cut -d' ' -f1)
  cp "$1" "$2/blobs/sha256/$d"
  echo "sha256:$d"
}

# oci_image OUT.tar NAME ROOTFS ENTRYPOINT_JSON CMD_JSON: one image, one layer, as an OCI layout in a tar.
oci_image() {
  local out=$1 name=$2 rootfs=$3 entrypoint=$4 cmd=$5
  local work
  work=$(mktemp -d)
  mkdir -p "$work/layout/blobs/sha256"
  tar --sort=name --mtime=@1767225600 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer.tar" .
  gzip -n -6 -c "$work/layer.tar" >"$work/layer.tar.gz"
  local diff_id layer layer_size
  diff_id=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  layer=$(blob "$work/layer.tar.gz" "$work/layout")
  layer_size=$(stat -c %s "$work/layer.tar.gz")
  # The image config must say os and architecture: containerd matches them against the node.
  jq -cn --arg created "$CREATED" --arg diff "$diff_id" --argjson ep "$entrypoint" --argjson cmd "$cmd" --arg name "$name" '{
      created: $created, architecture: "amd64", os: "linux",
      config: {
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        Entrypoint: $ep, Cmd: $cmd, WorkingDir: "/",
        Labels: {"org.opencontainers.image.source": "unloop testbed", "org.opencontainers.image.ref.name": $name}
      },
      rootfs: {type: "layers", diff_ids: [$diff]},
      history: [{created: $created, created_by: "testbed/images.sh"}]
    }' >"$work/config.json"
  local config config_size
  config=$(blob "$work/config.json" "$work/layout")
  config_size=$(stat -c %s "$work/config.json")
  jq -cn --arg c "$config" --argjson cs "$config_size" --arg l "$layer" --argjson ls "$layer_size" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]
    }' >"$work/manifest.json"
  local manifest manifest_size
  manifest=$(blob "$work/manifest.json" "$work/layout")
  manifest_size=$(stat -c %s "$work/manifest.json")
  jq -cn --arg m "$manifest" --argjson ms "$manifest_size" --arg name "$name" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
        platform: {architecture: "amd64", os: "linux"},
        annotations: {"io.containerd.image.name": $name, "org.opencontainers.image.ref.name": ($name | split(":") | last)}}]
    }' >"$work/layout/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
  tar --sort=name --mtime=@1767225600 --owner=0 --group=0 --numeric-owner -C "$work/layout" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  rm -rf "$work"
}

# A minimal /etc so tools that look up users (ps, id, whoami) behave.
base_etc() {
  mkdir -p "$1/etc" "$1/tmp"
  chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/etc/group"
}

build_images() {
  local dir=$1
  local work
  work=$(mktemp -d)
  log "building test images into $dir"
  (cd "$SRC/testapp" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=1.0.0" -o "$work/testapp-1" . &&
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=2.0.0" -o "$work/testapp-2" . &&
    CGO_ENABLED=0 GOARCH=arm64 go build -trimpath -ldflags "-s -w -X main.version=1.0.0" -o "$work/testapp-arm64" .)
  gcc -static -Os -s -o "$work/pause" "$SRC/pause/pause.c"

  mkdir -p "$work/pause-root"
  cp "$work/pause" "$work/pause-root/pause"
  oci_image "$dir/pause.tar" unloop.test/pause:3.10 "$work/pause-root" '["/pause"]' 'null'

  local v
  for v in 1 2; do
    local r=$work/app-$v-root
    base_etc "$r"
    mkdir -p "$r/bin" "$r/app" "$r/usr/bin"
    cp /bin/busybox "$r/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list-full); do
      [ "$applet" = bin/busybox ] && continue
      mkdir -p "$r/$(dirname "$applet")"
      ln -sf /bin/busybox "$r/$applet"
    done
    cp "$work/testapp-$v" "$r/app/testapp"
    ln -sf /app/testapp "$r/usr/bin/java"
    # The "jar" a start script hands to java: the fake JVM only takes its name.
    echo "PK (testbed placeholder: /usr/bin/java is testapp)" >"$r/app/orders.jar"
    oci_image "$dir/app-$v.0.tar" "unloop.test/app:$v.0" "$r" '["/app/testapp"]' '["serve"]'
  done

  mkdir -p "$work/static-root/app"
  cp "$work/testapp-1" "$work/static-root/app/testapp"
  oci_image "$dir/static-app.tar" unloop.test/static-app:1.0 "$work/static-root" '["/app/testapp"]' '["serve"]'

  # A cross-build mistake: the image says linux/amd64, its entrypoint is an arm64 binary.
  mkdir -p "$work/arm64-root/app"
  cp "$work/testapp-arm64" "$work/arm64-root/app/testapp"
  oci_image "$dir/arm64-app.tar" unloop.test/arm64-app:1.0 "$work/arm64-root" '["/app/testapp"]' '["serve"]'

  rm -rf "$work"
}

built_dir() {
  local dir
  dir=$IMAGE_CACHE/$(image_key)
  if [ ! -f "$dir/.done" ]; then
    mkdir -p "$dir"
    build_images "$dir"
    touch "$dir/.done"
    # Images of older sources are never used again.
    find "$IMAGE_CACHE" -mindepth 1 -maxdepth 1 -type d ! -path "$dir" -exec rm -rf {} +
  fi
  echo "$dir"
}

import_images() {
  local dir=$1 t
  [ -S "$CONTAINERD_SOCK" ] || die "containerd is not running ($CONTAINERD_SOCK missing): run testbed/up.sh"
  for t in "$dir"/*.tar; do
    ctr -n k8s.io images import --snapshotter overlayfs "$t" >/dev/null
  done
  local missing=() img
  local have
  have=$(ctr -n k8s.io images ls -q)
  for img in "${IMAGES[@]}"; do grep -qxF "$img" <<<"$have" || missing+=("$img"); done
  [ ${#missing[@]} -eq 0 ] || die "image import failed, missing: ${missing[*]}"
  log "imported ${#IMAGES[@]} images into containerd (k8s.io)"
}

need_root
case "${1:-all}" in
  build) built_dir >/dev/null ;;
  all | import) import_images "$(built_dir)" ;;
  list) printf '%s\n' "${IMAGES[@]}" ;;
  *) die "usage: images.sh [build|import|list]" ;;
esac
