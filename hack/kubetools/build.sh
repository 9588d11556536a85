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
# The binaries go to ${WARDEN_KUBE_BIN:-$HOME/.cache/warden-kube/v1.37.2}.
# A binary that is there and was linked from exactly the module versions
# this go.mod selects (read back with `go version -m`) is kept; a missing or
# stale one is rebuilt. Both are built by one `go build`, so etcd and
# kube-apiserver compile in parallel and their many shared packages once.
# Only what the tests need: the two servers, -trimpath, no symbol table or
# DWARF (-ldflags '-s -w', and -gcflags -dwarf=false so the compiler does
# not produce it either), no cgo. A cold build on a busy 2-core machine
# takes minutes (see README, "Tests"); the Go build cache makes a rebuild
# after a version bump cheaper. The binaries are built in a temporary
# directory and then moved, so an interrupted build never leaves half a
# binary. The script prints the directory when done.
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
trap '[[ -n "$tmp" ]] && rm -rf "$tmp"' EXIT

# current NAME: the binary exists, kube-apiserver reports this version (the
# -X stamp; -trimpath keeps -ldflags out of the build info), and every
# module the binary was linked from is at the version go.mod selects now.
current() {
    local f="$bin/$1" want have
    [[ -x "$f" ]] || return 1
    if [[ "$1" == kube-apiserver ]] && [[ "$("$f" --version 2>/dev/null)" != "Kubernetes $KUBE_VERSION" ]]; then
        return 1
    fi
    if ! want="$(cd "$here" && GOWORK=off go list -m -f '{{.Path}} {{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' all 2>/dev/null)"; then
        echo "cannot read the module graph (offline?); keeping $f" >&2
        return 0
    fi
    have="$(go version -m "$f" | awk -F'\t' '
        $2 == "mod" || $2 == "dep" { if (p != "") print p " " v; p = $3; v = $4 }
        $2 == "=>" { v = $4 }
        END { if (p != "") print p " " v }' | grep -v ' (devel)$')"
    [[ -z "$(comm -23 <(sort -u <<<"$have") <(sort -u <<<"$want"))" ]]
}

# NAME PACKAGE BINARY: BINARY is the name go build gives PACKAGE's command.
targets=(
    "etcd go.etcd.io/etcd/server/v3 server"
    "kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver"
)
pkgs=()
for t in "${targets[@]}"; do
    read -r name pkg _ <<<"$t"
    if ! current "$name"; then
        pkgs+=("$pkg")
    fi
done

if ((${#pkgs[@]} > 0)); then
    echo "building ${pkgs[*]} into $bin" >&2
    tmp="$(mktemp -d "$bin/.build.XXXXXX")"
    (cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath -gcflags=all=-dwarf=false -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
    for t in "${targets[@]}"; do
        read -r name _ out <<<"$t"
        if [[ -f "$tmp/$out" ]]; then
            chmod 0755 "$tmp/$out"
            mv -f "$tmp/$out" "$bin/$name"
        fi
    done
fi

echo "$bin"
