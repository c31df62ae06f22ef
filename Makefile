# vxswitch: the targets people expect. Everything that creates network
# namespaces (test, demo, bench) must run as root.

GO      ?= go
BIN     := bin/vxswitch
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 20s

.PHONY: build test unit fuzz lint demo bench clean

build:
	GO=$(GO) ./scripts/build.sh $(BIN)

# The README's test command: every test, netns tests included (root).
test:
	./scripts/test.sh

# Tests that need no root (netns tests skip).
unit:
	$(GO) test -race -count=1 ./encap/ ./fib/ ./switch/...

demo:
	./scripts/demo.sh

# vxswitch against the kernel's vxlan and the bare underlay (root, a few
# minutes): prints the table, writes bench/results/latest.{json,svg}.
# BENCHFLAGS passes vxbench flags, e.g. BENCHFLAGS='-repeat 5 -daemon-args=--offload=off'.
bench: build
	$(GO) run ./cmd/vxbench -binary $(BIN) $(BENCHFLAGS)

# The cluster store at scale (root, a few minutes; etcd-server installed):
# 16 daemons in 16 host namespaces and one etcd member, 100 attaches in
# turn; prints the table, writes bench/results/scale.json (docs/scale.md).
# SCALEFLAGS passes vxbench flags, e.g. SCALEFLAGS='-attaches 50 -etcd /path/to/etcd'.
.PHONY: bench-scale
bench-scale: build
	$(GO) run ./cmd/vxbench -scale -binary $(BIN) $(SCALEFLAGS)

# The soak (root, 10 minutes): TCP and UDP both ways through two daemons,
# every byte checked, each daemon's RSS, goroutines and open fds sampled;
# prints the figures, writes bench/results/soak.{json,svg} (README, Soak).
# SOAKFLAGS passes vxbench flags, e.g. SOAKFLAGS='-duration 1h -udp-rate 20000'.
.PHONY: soak
soak: build
	$(GO) run ./cmd/vxbench -soak -binary $(BIN) $(SOAKFLAGS)

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in ./encap ./fib ./switch ./switch/udp; do \
		for t in $$($(GO) test -list 'Fuzz.*' $$pkg | grep ^Fuzz); do \
			echo "== $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin
	$(GO) clean -testcache
