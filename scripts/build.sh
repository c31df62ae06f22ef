#!/usr/bin/env bash
# Builds the vxswitch binary (default bin/vxswitch) with its version, as
# `git describe` says it, built in. `make build` and the demo both use it.
# GO names the go command (default: go in PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(git describe --always --dirty 2>/dev/null || echo dev)
"${GO:-go}" build -ldflags "-X main.version=$version" -o "${1:-bin/vxswitch}" ./cmd/vxswitch
