#!/usr/bin/env bash
# Runs every test of vxswitch as root: the unit tests (with the race
# detector), the fuzz targets' seed corpora, and the network-namespace
# tests (two and three hosts, kernel vxlan interop, restart, CLI errors,
# the CNI plugin under cnitool and podman: the tests install cnitool with
# `go install` into the user's cache directory; Docker engines).
# Under CI=true a test that needs root can never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
need_go
need_cmds ip:iproute2 ping:iputils-ping nsenter:util-linux taskset:util-linux iperf3:iperf3 curl:curl etcd:etcd-server \
	podman:podman runc:runc dockerd:docker.io busybox:busybox-static nft:nftables
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt: not formatted: $unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 30m "$@" ./...
