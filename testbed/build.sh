#!/usr/bin/env bash
# Builds the testbed's binaries from the Go module proxy and installs the Debian packages it needs.
# Cached under $CACHE keyed by version: a second run costs seconds.
source "$(dirname "$0")/lib/common.sh"
need_root

install_packages() {
  local pkgs=(containerd runc containernetworking-plugins iptables busybox-static tcpdump conntrack openssl jq socat iproute2 curl python3)
  local missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every staging module with a local path.
# A wrapper module requires it and points each staging module at its published v0.N.M twin.
build_kubernetes() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy)
  local ok=1
  for b in "${want[@]}"; do [ -x "$BIN/$b" ] || ok=0; done
  [ $ok = 1 ] && return
  local mod=$CACHE/src/k8s-$K8S_VERSION
  mkdir -p "$mod" "$BIN"
  log "building Kubernetes $K8S_VERSION (cold: 15-30 minutes on 2 cores)"
  (cd "$mod" && [ -f go.mod ] || (cd "$mod" && go mod init unloop.test/k8sbuild >/dev/null 2>&1))
  (cd "$mod" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null)
  local upstream
  upstream=$(cd "$mod" && go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
  local staging_version=v0.${K8S_VERSION#v1.}
  {
    echo "module unloop.test/k8sbuild"
    echo
    grep -E '^go [0-9]' "$upstream"
    grep -E '^godebug ' "$upstream" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    grep -E '^\s+k8s\.io/[a-z0-9-]+ => \./staging/' "$upstream" |
      awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  (cd "$mod" && go mod tidy >/dev/null 2>&1 || go mod tidy)
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for b in "${want[@]}"; do
    [ -x "$BIN/$b" ] && continue
    log "  go build $b"
    (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$BIN/$b.tmp" "$BIN/$b"
  done
}

# etcd's own main module has replace directives too; etcdmain is the same entry point the etcd binary uses.
build_etcd() {
  [ -x "$BIN/etcd" ] && return
  local mod=$CACHE/src/etcd-$ETCD_VERSION
  mkdir -p "$mod" "$BIN"
  log "building etcd $ETCD_VERSION"
  cat >"$mod/go.mod" <<GO
module unloop.test/etcdbuild

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GO
  cat >"$mod/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$mod" && go mod tidy >/dev/null && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" .)
  mv "$BIN/etcd.tmp" "$BIN/etcd"
}

# CoreDNS with only the plugins the testbed needs: it answers for the cluster domain and forwards nothing,
# so a pod's DNS query never leaves the machine. `bind` keeps it off eth0. The plugin list is part of the
# cache key (a stamp next to the binary), so changing it here rebuilds CoreDNS on the next run.
COREDNS_PLUGINS=(bind errors log health ready kubernetes)
build_coredns() {
  local stamp="${COREDNS_PLUGINS[*]}"
  [ -x "$BIN/coredns" ] && [ "$(cat "$BIN/coredns.plugins" 2>/dev/null)" = "$stamp" ] && return
  local mod=$CACHE/src/coredns-$COREDNS_VERSION
  mkdir -p "$mod" "$BIN"
  log "building CoreDNS $COREDNS_VERSION (plugins: $stamp)"
  cat >"$mod/go.mod" <<GO
module unloop.test/corednsbuild

go 1.24

require github.com/coredns/coredns $COREDNS_VERSION
GO
  {
    echo 'package main'
    echo
    echo 'import ('
    echo '	"github.com/coredns/coredns/core/dnsserver"'
    echo '	"github.com/coredns/coredns/coremain"'
    echo
    for p in "${COREDNS_PLUGINS[@]}"; do echo "	_ \"github.com/coredns/coredns/plugin/$p\""; done
    echo ')'
    echo
    echo 'func init() {'
    printf '	dnsserver.Directives = []string{'
    local sep=''
    for p in "${COREDNS_PLUGINS[@]}"; do printf '%s"%s"' "$sep" "$p"; sep=', '; done
    echo '}'
    echo '}'
    echo
    echo 'func main() { coremain.Run() }'
  } >"$mod/main.go"
  (cd "$mod" && go mod tidy >/dev/null && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/coredns.tmp" .)
  mv "$BIN/coredns.tmp" "$BIN/coredns"
  echo "$stamp" >"$BIN/coredns.plugins"
}

# go_tool NAME MODULE VERSION PACKAGE: builds a Go program whose module has no replace directives, in a
# wrapper module of its own, into $TOOLS/NAME-VERSION/NAME (the version in the directory is the cache key;
# the binary keeps its own name, which is how down.sh recognises a running component).
go_tool() {
  local name=$1 module=$2 version=$3 pkg=$4
  local out=$TOOLS/$name-$version/$name mod=$CACHE/src/$name-$version
  [ -x "$out" ] && return
  mkdir -p "$mod" "$TOOLS/$name-$version"
  log "building $name $version from the Go module proxy"
  cat >"$mod/go.mod" <<GO
module unloop.test/${name}build

go 1.24

require $module $version
GO
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >"$mod/tools.go"
  (cd "$mod" && go mod tidy >/dev/null 2>&1 || go mod tidy)
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
}

# metrics-server serves metrics.k8s.io for `kubectl top` and `unloop audit --rightsize` (started by up.sh).
build_metrics_server() { go_tool metrics-server sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION" sigs.k8s.io/metrics-server/cmd/metrics-server; }
# kwok runs the scale fixture's fake nodes (testbed/scale.sh); only built when that asks for it.
# Its stages (what it does to a node or pod, and when) ship in the module, not in the binary: kept beside it.
build_kwok() {
  go_tool kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
  local stages=$TOOLS/kwok-$KWOK_VERSION/stages src
  [ -f "$stages/pod-ready.yaml" ] && return
  src=$(cd "$CACHE/src/kwok-$KWOK_VERSION" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  mkdir -p "$stages.tmp"
  cp "$src"/node/fast/node-initialize.yaml "$src"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    "$src"/pod/fast/pod-ready.yaml "$src"/pod/fast/pod-complete.yaml "$src"/pod/fast/pod-delete.yaml "$stages.tmp/"
  chmod 644 "$stages.tmp"/*
  rm -rf "$stages" && mv "$stages.tmp" "$stages"
}

case "${1:-}" in
  kwok) build_kwok; exit 0 ;;
  "") ;;
  *) die "usage: build.sh [kwok]" ;;
esac

install_packages
build_etcd
build_coredns
build_kubernetes
build_metrics_server
log "binaries ready in $BIN and $TOOLS"
# UNLOOP_TESTBED_LEAN=1 (CI): the binaries are cached above; the Go build cache behind them (GBs
# for Kubernetes) only speeds up a rebuild that a fresh CI machine never does.
if [ "${UNLOOP_TESTBED_LEAN:-0}" = 1 ]; then go clean -cache; fi
