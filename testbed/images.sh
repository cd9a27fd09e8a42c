#!/usr/bin/env bash
# Builds the testbed's container images as OCI image tarballs, by hand (no image builder: tar, sha256sum,
# JSON), and imports them into the testbed's containerd (namespace k8s.io), which never pulls.
#
#   images.sh          build (cached under $IMAGE_CACHE, keyed by the sources) and import
#   images.sh build    build only
#   images.sh list     the image names
#   images.sh unloop BINARY   unloop's own image (unloop.test/unloop:dev-DIGEST) with BINARY, imported;
#                      prints its name (the agent's e2e builds it from the binary under test)
#
# Images (tags are never `latest`, so the kubelet's default pull policy is IfNotPresent):
#   unloop.test/pause:3.10        the pod sandbox (containerd's sandbox_image)
#   unloop.test/app:1.0           busybox-static with its applets + /app/testapp 1.0 + /usr/bin/java (testapp)
#   unloop.test/app:2.0           the same with testapp 2.0, whose `serve` also requires CACHE_URL
#   unloop.test/static-app:1.0    only /app/testapp: no shell, no sleep
#   unloop.test/arm64-app:1.0     labelled linux/amd64 but /app/testapp is an arm64 build (exec format error)
#
# Real runtimes, from Debian's own packages (DEBIAN_IMAGES below): two layers each, a shared Debian
# minbase layer (debootstrap) and the packages installed on top of it with apt-get (the runtime's own
# maintainer scripts ran, as in any Debian system). Built under $IMAGE_CACHE/debian/KEY, KEY being the
# suite, the mirror, the package list and the functions that build them, so an unrelated edit to this
# script rebuilds only the busybox images.
source "$(dirname "$0")/lib/common.sh"

SRC=$TESTBED_DIR/images
CREATED=2026-01-01T00:00:00Z
# >>> debian: the runtime images' settings (image_key leaves these parts out; debian_key covers them)
DEBIAN_SUITE=bookworm
# The host's own Debian mirror (the only package source this machine uses).
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(.*debian\)$/\1/p; s/^deb \(http[^ ]*debian\) .*/\1/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# NAME:TAG | tarball | packages (--no-install-recommends) | entrypoint JSON | cmd JSON | sources: a
# directory of images/ whose Java sources are compiled into /app (a third layer)
DEBIAN_IMAGES=(
  "unloop.test/jre:17|jre-17|openjdk-17-jre-headless|null|[\"java\",\"-cp\",\"/app\",\"OrdersCache\"]|jvm"
  "unloop.test/python:3.11|python-3.11|python3|null|[\"python3\"]"
  "unloop.test/node:18|node-18|nodejs|null|[\"node\"]"
  "unloop.test/nginx:1.22|nginx-1.22|nginx-light|null|[\"nginx\",\"-g\",\"daemon off;\"]"
  "unloop.test/postgres:15|postgres-15|postgresql-15 postgresql-client-15|null|[\"bash\"]"
  "unloop.test/redis:7|redis-7|redis-server|null|[\"redis-server\",\"--protected-mode\",\"no\"]"
)
IMAGES=(unloop.test/pause:3.10 unloop.test/app:1.0 unloop.test/app:2.0 unloop.test/static-app:1.0 unloop.test/arm64-app:1.0)
for spec in "${DEBIAN_IMAGES[@]}"; do IMAGES+=("${spec%%|*}"); done
# <<< debian

image_key() {
  { sed '/^# >>> debian/,/^# <<< debian/d' "$0"; cat "$SRC/pause/pause.c" "$SRC/testapp/go.mod" "$SRC"/testapp/*.go; sha256sum /bin/busybox; go version; gcc --version | head -1; } |
    sha256sum | cut -c1-16
}

# blob FILE LAYOUT: stores FILE as a content-addressed blob, prints its digest.
blob() {
  local d
  d=$(sha256sum "$1" | cut -d' ' -f1)
  cp "$1" "$2/blobs/sha256/$d"
  echo "sha256:$d"
}

# layer_of ROOTFS: ROOTFS as a layer, ROOTFS.layer.tar.gz (cached beside it) with ROOTFS.diff_id.
layer_of() {
  local rootfs=$1
  [ -f "$rootfs.layer.tar.gz" ] && [ -f "$rootfs.diff_id" ] && return
  tar --sort=name --mtime=@1767225600 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$rootfs.layer.tar" .
  echo "sha256:$(sha256sum "$rootfs.layer.tar" | cut -d' ' -f1)" >"$rootfs.diff_id"
  gzip -n -6 -c "$rootfs.layer.tar" >"$rootfs.layer.tar.gz.tmp"
  mv "$rootfs.layer.tar.gz.tmp" "$rootfs.layer.tar.gz"
  rm -f "$rootfs.layer.tar"
}

# oci_image OUT.tar NAME ENTRYPOINT_JSON CMD_JSON ROOTFS...: one image whose layers are the ROOTFS
# directories, bottom first, as an OCI layout in a tar. Extra config keys come from $IMAGE_CONFIG (JSON).
oci_image() {
  local out=$1 name=$2 entrypoint=$3 cmd=$4
  shift 4
  local work rootfs
  work=$(mktemp -d)
  mkdir -p "$work/layout/blobs/sha256"
  local diff_ids=() layers='[]' layer
  for rootfs in "$@"; do
    layer_of "$rootfs"
    diff_ids+=("$(cat "$rootfs.diff_id")")
    layer=$(blob "$rootfs.layer.tar.gz" "$work/layout")
    layers=$(jq -c --arg l "$layer" --argjson ls "$(stat -c %s "$rootfs.layer.tar.gz")" \
      '. + [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]' <<<"$layers")
  done
  # The image config must say os and architecture: containerd matches them against the node.
  jq -cn --arg created "$CREATED" --argjson ep "$entrypoint" --argjson cmd "$cmd" --arg name "$name" \
    --argjson extra "${IMAGE_CONFIG:-null}" '{
      created: $created, architecture: "amd64", os: "linux",
      config: ({
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        Entrypoint: $ep, Cmd: $cmd, WorkingDir: "/",
        Labels: {"org.opencontainers.image.source": "unloop testbed", "org.opencontainers.image.ref.name": $name}
      } + ($extra // {})),
      rootfs: {type: "layers", diff_ids: $ARGS.positional},
      history: [$ARGS.positional[] | {created: $created, created_by: "testbed/images.sh"}]
    }' --args "${diff_ids[@]}" >"$work/config.json"
  local config config_size
  config=$(blob "$work/config.json" "$work/layout")
  config_size=$(stat -c %s "$work/config.json")
  jq -cn --arg c "$config" --argjson cs "$config_size" --argjson layers "$layers" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: $layers
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
  oci_image "$dir/pause.tar" unloop.test/pause:3.10 '["/pause"]' 'null' "$work/pause-root"

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
    oci_image "$dir/app-$v.0.tar" "unloop.test/app:$v.0" '["/app/testapp"]' '["serve"]' "$r"
  done

  mkdir -p "$work/static-root/app"
  cp "$work/testapp-1" "$work/static-root/app/testapp"
  oci_image "$dir/static-app.tar" unloop.test/static-app:1.0 '["/app/testapp"]' '["serve"]' "$work/static-root"

  # A cross-build mistake: the image says linux/amd64, its entrypoint is an arm64 binary.
  mkdir -p "$work/arm64-root/app"
  cp "$work/testapp-arm64" "$work/arm64-root/app/testapp"
  oci_image "$dir/arm64-app.tar" unloop.test/arm64-app:1.0 '["/app/testapp"]' '["serve"]' "$work/arm64-root"

  rm -rf "$work"
}

built_dir() {
  local dir
  dir=$IMAGE_CACHE/$(image_key)
  if [ ! -f "$dir/.done" ]; then
    mkdir -p "$dir"
    build_images "$dir"
    touch "$dir/.done"
    # Images of older sources are never used again (the Debian images have keys of their own).
    find "$IMAGE_CACHE" -mindepth 1 -maxdepth 1 -type d ! -path "$dir" ! -path "$IMAGE_CACHE/debian" -exec rm -rf {} +
  fi
  echo "$dir"
}

# >>> debian: how the runtime images are built
DEBIAN_CACHE=$IMAGE_CACHE/debian

# debian_key [PACKAGES...]: the cache key of the base (no PACKAGES) or of a layer of PACKAGES.
debian_key() {
  { declare -f debian_base debian_layer overlay_to_oci layer_of oci_image; echo "$DEBIAN_SUITE $DEBIAN_MIRROR | $*"; } |
    sha256sum | cut -c1-16
}

# debian_base DIR: a Debian minbase tree in DIR/rootfs, slimmed (no docs, manuals, translations, apt
# lists or logs), with a policy-rc.d that keeps maintainer scripts from starting services.
debian_base() {
  local dir=$1 r=$1/rootfs
  [ -f "$dir/.done" ] && return
  rm -rf "$dir"
  mkdir -p "$dir"
  log "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR"
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$r" "$DEBIAN_MIRROR" >"$dir/debootstrap.log" 2>&1 ||
    { tail -20 "$dir/debootstrap.log" >&2; die "debootstrap failed (log: $dir/debootstrap.log)"; }
  cat >"$r/etc/dpkg/dpkg.cfg.d/unloop-slim" <<'SLIM'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
SLIM
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$r"/usr/share/{doc,man,info,lintian}/* "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* \
    "$r"/var/log/* "$r"/var/cache/debconf/*-old "$r"/etc/resolv.conf "$r"/etc/hostname
  # update-alternatives links manual pages even when dpkg leaves them out (openjdk's postinst).
  mkdir -p "$r"/usr/share/man/man{1,7}
  printf '#!/bin/sh\n# testbed image: maintainer scripts never start services\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 755 "$r/usr/sbin/policy-rc.d"
  touch "$dir/.done"
}

# overlay_to_oci DIR: overlayfs whiteouts in the upper DIR become OCI whiteouts (.wh.NAME, .wh..wh..opq).
overlay_to_oci() {
  local f
  while IFS= read -r -d '' f; do
    [ "$(stat -c '%t:%T' "$f")" = 0:0 ] || continue
    rm -f "$f"
    touch "$(dirname "$f")/.wh.$(basename "$f")"
  done < <(find "$1" -type c -print0)
  # A directory removed and made again in the layer is opaque (xattr trusted.overlay.opaque=y).
  python3 -c '
import os, sys
for root, dirs, _ in os.walk(sys.argv[1]):
    for d in [root] + [os.path.join(root, x) for x in dirs]:
        try:
            if os.getxattr(d, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
                open(os.path.join(d, ".wh..wh..opq"), "w").close()
        except OSError:
            pass
' "$1"
}

# debian_layer BASE DIR PACKAGES...: apt-get installs PACKAGES on BASE/rootfs through an overlay; what
# changed (the overlay's upper directory) is the layer, DIR/rootfs.
debian_layer() {
  local base=$1/rootfs dir=$2
  shift 2
  [ -f "$dir/.done" ] && return
  rm -rf "$dir"
  mkdir -p "$dir/rootfs" "$dir/work" "$dir/merged"
  local m=$dir/merged
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$dir/rootfs,workdir=$dir/work" "$m"
  mount -t proc proc "$m/proc"
  mount --bind /dev "$m/dev"
  cp /etc/resolv.conf "$m/etc/resolv.conf"
  log "apt-get install $* (on the Debian base)"
  local rc=0
  { chroot "$m" apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive chroot "$m" apt-get install -y -q --no-install-recommends "$@"; } >"$dir/apt.log" 2>&1 || rc=$?
  chroot "$m" apt-get clean >/dev/null 2>&1 || true
  rm -rf "$m"/var/lib/apt/lists/* "$m"/var/cache/apt/*.bin "$m"/var/log/* "$m"/var/cache/debconf/*-old \
    "$m"/etc/resolv.conf "$m"/etc/hostname "$m"/tmp/* "$m"/root/.cache 2>/dev/null || true
  umount "$m/dev" "$m/proc" "$m"
  rm -rf "$dir/work" "$m"
  [ $rc = 0 ] || { tail -20 "$dir/apt.log" >&2; die "apt-get install $* failed (log: $dir/apt.log)"; }
  overlay_to_oci "$dir/rootfs"
  touch "$dir/.done"
}

# java_layer BASE SRCDIR OUT: the Java sources of SRCDIR compiled (javac --release 17) into OUT/app,
# by a JDK from Debian installed in a build tree of its own (cached, never imported).
JDK_BUILD_PACKAGES=openjdk-17-jdk-headless
java_layer() {
  local base=$1 src=$2 out=$3 jdk w rc=0
  jdk=$DEBIAN_CACHE/jdk-build-$(debian_key $JDK_BUILD_PACKAGES)
  debian_layer "$base" "$jdk" $JDK_BUILD_PACKAGES
  w=$(mktemp -d "$DEBIAN_CACHE/javac.XXXXXX")
  mkdir -p "$w/upper" "$w/work" "$w/merged"
  mount -t overlay overlay -o "lowerdir=$jdk/rootfs:$base/rootfs,upperdir=$w/upper,workdir=$w/work" "$w/merged"
  mount -t proc proc "$w/merged/proc"
  mkdir -p "$w/merged/src"
  cp "$src"/*.java "$w/merged/src/"
  chroot "$w/merged" sh -c 'javac --release 17 -d /out /src/*.java' >"$w/javac.log" 2>&1 || rc=$?
  rm -rf "$out"
  mkdir -p "$out/app"
  [ $rc = 0 ] && cp "$w/merged/out/"*.class "$out/app/"
  umount "$w/merged/proc" "$w/merged"
  [ $rc = 0 ] || { cat "$w/javac.log" >&2; rm -rf "$w"; die "javac failed for $src"; }
  rm -rf "$w"
}

# debian_images: builds (cached) the runtime images; prints their tarballs.
debian_images() {
  local base spec name file pkgs ep cmd srcdir dir keep=() layers
  base=$DEBIAN_CACHE/base-$(debian_key)
  keep+=("$base")
  if [ ! -f "$base/.done" ] && ! command -v debootstrap >/dev/null; then
    log "installing debootstrap (Debian's package) for the runtime images"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
  fi
  debian_base "$base"
  for spec in "${DEBIAN_IMAGES[@]}"; do
    IFS='|' read -r name file pkgs ep cmd srcdir <<<"$spec"
    # shellcheck disable=SC2086 # the package list is words
    dir=$DEBIAN_CACHE/$file-$(debian_key $pkgs ${srcdir:+$(declare -f java_layer; cat "$SRC/$srcdir"/*.java)})
    keep+=("$dir")
    if [ -n "$srcdir" ]; then
      # shellcheck disable=SC2086
      keep+=("$DEBIAN_CACHE/jdk-build-$(debian_key $JDK_BUILD_PACKAGES)")
    fi
    if [ ! -f "$dir/image.tar" ]; then
      # shellcheck disable=SC2086
      debian_layer "$base" "$dir" $pkgs
      layers=("$base/rootfs" "$dir/rootfs")
      if [ -n "$srcdir" ]; then
        java_layer "$base" "$SRC/$srcdir" "$dir/java"
        layers+=("$dir/java")
      fi
      oci_image "$dir/image.tar" "$name" "$ep" "$cmd" "${layers[@]}"
      log "built $name: $(du -m "$dir/rootfs.layer.tar.gz" | cut -f1) MB layer over a $(du -m "$base/rootfs.layer.tar.gz" | cut -f1) MB base (image $(du -m "$dir/image.tar" | cut -f1) MB)"
    fi
    echo "$dir/image.tar"
  done
  # Trees of older keys are never used again.
  local d k stale
  for d in "$DEBIAN_CACHE"/*/; do
    stale=1
    for k in "${keep[@]}"; do [ "${d%/}" = "$k" ] && stale=0; done
    [ $stale = 0 ] || rm -rf "${d%/}"
  done
}

# unloop_image BINARY: unloop's own image, for `unloop agent` in the cluster: the Debian minbase layer
# (glibc, for the binary cargo built), Debian's ca-certificates, and BINARY, stripped, as
# /usr/local/bin/unloop. Tagged by the digest of both (never `latest`), imported into containerd;
# older unloop.test/unloop tags are removed. Prints the image name.
UNLOOP_IMAGE_REPO=unloop.test/unloop
unloop_image() {
  local bin=$1 base ca key dir name old
  [ -x "$bin" ] || die "unloop_image: $bin is not an executable"
  base=$DEBIAN_CACHE/base-$(debian_key)
  if [ ! -f "$base/.done" ] && ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
  fi
  debian_base "$base"
  # The system's CA roots: the agent's webhook client (rustls with the native roots) refuses to
  # start without them. A layer of Debian's ca-certificates, kept apart from the runtime images'.
  ca=$IMAGE_CACHE/unloop-base/ca-certificates-$(debian_key ca-certificates)
  debian_layer "$base" "$ca" ca-certificates
  key=$( { sha256sum <"$bin"; echo "$ca"; } | sha256sum | cut -c1-12)
  dir=$IMAGE_CACHE/unloop/$key
  name=$UNLOOP_IMAGE_REPO:dev-$key
  if [ ! -f "$dir/image.tar" ]; then
    rm -rf "$IMAGE_CACHE/unloop"
    mkdir -p "$dir/rootfs/usr/local/bin"
    strip -o "$dir/rootfs/usr/local/bin/unloop" "$bin"
    chmod 755 "$dir/rootfs/usr/local/bin/unloop"
    IMAGE_CONFIG='{"User":"65532:65532"}' oci_image "$dir/image.tar" "$name" '["/usr/local/bin/unloop"]' '["agent"]' "$base/rootfs" "$ca/rootfs" "$dir/rootfs"
    log "built $name: $(du -m "$dir/rootfs.layer.tar.gz" | cut -f1) MB layer over the $(du -m "$base/rootfs.layer.tar.gz" | cut -f1) MB Debian base"
  fi
  [ -S "$CONTAINERD_SOCK" ] || die "containerd is not running ($CONTAINERD_SOCK missing): run testbed/up.sh"
  for old in $(ctr -n k8s.io images ls -q | grep "^$UNLOOP_IMAGE_REPO:" | grep -vxF "$name" || true); do
    ctr -n k8s.io images rm "$old" >/dev/null
  done
  ctr -n k8s.io images import --snapshotter overlayfs "$dir/image.tar" >/dev/null
  ctr -n k8s.io images ls -q | grep -qxF "$name" || die "import of $name failed"
  echo "$name"
}
# <<< debian

import_images() {
  local dir=$1 t
  [ -S "$CONTAINERD_SOCK" ] || die "containerd is not running ($CONTAINERD_SOCK missing): run testbed/up.sh"
  local tars=("$dir"/*.tar)
  mapfile -t -O ${#tars[@]} tars < <(debian_images)
  for t in "${tars[@]}"; do
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
  build) built_dir >/dev/null && debian_images >/dev/null ;;
  all | import) import_images "$(built_dir)" ;;
  list) printf '%s\n' "${IMAGES[@]}" ;;
  unloop) unloop_image "${2:?usage: images.sh unloop BINARY}" ;;
  *) die "usage: images.sh [build|import|list|unloop BINARY]" ;;
esac
