#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd that internal/kubetest starts, from
# source through the Go module proxy (no release downloads, no docker).
#
# Why a separate module: k8s.io/kubernetes is not meant to be imported. It
# requires its 31 staging modules (k8s.io/api, k8s.io/apiserver, ...) at
# v0.0.0, so hack/kubetools/go.mod replaces each with its published v0.37.2.
# Keeping that here keeps its huge dependency graph out of the project's own
# go.mod. Both binaries are `tool` dependencies of this module.
#
# The binaries go to ${WARDEN_KUBE_BIN:-$HOME/.cache/warden-kube/v1.37.2} and
# are built only when missing (a cold build takes ~5 minutes on 2 cores). Each
# is built under a temporary name and then moved, so an interrupted build never
# leaves half a binary. The script prints the directory when done.
#
# The -X flags stamp the version: without gitVersion the server reports
# v0.0.0-master+$Format:%H$ and clients cannot parse it.
set -euo pipefail

KUBE_VERSION=v1.37.2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${WARDEN_KUBE_BIN:-$HOME/.cache/warden-kube/$KUBE_VERSION}"
mkdir -p "$bin"

major="${KUBE_VERSION#v}"; major="${major%%.*}"
minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION"
    ldflags+=" -X $pkg.gitMajor=$major"
    ldflags+=" -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

tmp=""
trap '[[ -n "$tmp" ]] && rm -f "$tmp"' EXIT

build() { # build NAME PACKAGE
    local name="$1" pkg="$2"
    if [[ -x "$bin/$name" ]]; then
        return
    fi
    echo "building $name ($pkg) into $bin" >&2
    tmp="$(mktemp "$bin/.$name.XXXXXX")"
    (cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg")
    chmod 0755 "$tmp"
    mv -f "$tmp" "$bin/$name"
    tmp=""
}

build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver

echo "$bin"
