# The commands in the README: `make demo`, `make test` and `make test-quick`.
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export DATABASE_URL
GO ?= go

.PHONY: build demo test test-quick test-build fuzz bench bench-mcp vet kubetools

build:
	$(GO) build -o bin/warden ./cmd/warden

demo: build
	bin/warden demo

# The real kube-apiserver and etcd the Kubernetes tests start, built from
# source once and cached in ~/.cache/warden-kube (rebuilt only when missing
# or built from other module versions). See README, "Tests", for how long.
kubetools:
	bash hack/kubetools/build.sh

# Everything, the Kubernetes API server tests included: what CI runs.
# cmd/warden's end-to-end tests take about 10 minutes under -race on two
# cores, the go test default timeout, hence -timeout 30m. The
# Kubernetes binaries build while the tests compile; then every test runs,
# and a missing binary fails the Kubernetes tests (WARDEN_SKIP_KUBE is
# cleared, whatever the shell has).
test:
	$(MAKE) -j2 kubetools test-build
	WARDEN_SKIP_KUBE= $(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

# Everything except the tests that start a real kube-apiserver and etcd
# (they skip, and nothing Kubernetes is built).
test-quick:
	$(GO) vet ./...
	WARDEN_SKIP_KUBE=1 $(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

# vet, and compile every test binary without running it.
test-build:
	$(GO) vet ./...
	$(GO) test -race -count=1 -run '^$$' -exec true ./... > /dev/null

fuzz:
	# The detectors' fuzz targets, briefly: no panic, no detected value survives
	# (FuzzScrubLayers: under encoding layers, with output and work bounded).
	# Budgets are execution counts (about 10s each here), not durations: with a
	# duration, Go 1.26's fuzz coordinator can report "context deadline
	# exceeded" at the deadline with no failing input (go.dev/issue/75804,
	# fixed in Go 1.27).
	$(GO) test -run '^$$' -fuzz '^FuzzScrub$$' -fuzztime 150000x ./mask/
	$(GO) test -run '^$$' -fuzz '^FuzzScrubFragments$$' -fuzztime 40000x ./mask/
	$(GO) test -run '^$$' -fuzz '^FuzzScrubJSON$$' -fuzztime 80000x ./mask/
	$(GO) test -run '^$$' -fuzz '^FuzzScrubLayers$$' -fuzztime 25000x ./mask/
	# Kubernetes objects of any shape: the walker's output is JSON, its work is
	# bounded, and a value under a name that says secret never shows.
	$(GO) test -run '^$$' -fuzz '^FuzzClean$$' -fuzztime 20000x ./tools/kube/
	# Statements never crash the parser or the analysis.
	$(GO) test -run '^$$' -fuzz '^FuzzStatement$$' -fuzztime 20000x ./tools/sql/
	# The response encoder's JSON validator accepts exactly what encoding/json's does.
	$(GO) test -run '^$$' -fuzz '^FuzzValidJSON$$' -fuzztime 40000x ./mcp/
	# Flow scanning: any arguments scanned without a panic and in bounded work.
	$(GO) test -run '^$$' -fuzz '^FuzzScan$$' -fuzztime 20000x ./flows/
	# The relay's side of the socket other wardens write to: what it commits is
	# exactly a call record that was sent, each answered once; the chain verifies.
	$(GO) test -run '^$$' -fuzz '^FuzzReadRelayRecord$$' -fuzztime 100000x ./recorder/sqlite/
	$(GO) test -run '^$$' -fuzz '^FuzzRelayServe$$' -fuzztime 20000x ./recorder/sqlite/

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./tools/sql/ ./recorder/... ./mcp/
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./tools/kube/
	$(GO) test -run '^$$' -bench . -benchmem -count 5 -cpu 1 ./mask/
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20000x -count 5 ./flows/

# warden as an agent sees it (issue 14): the official Go SDK client over
# stdio and streamable HTTP against warden's binary, the MCP floor (a
# do-nothing Go SDK server returning warden's bytes) and plain pgx, all in
# one run against one database; then eight stdio wardens with a store each
# against eight sharing one. docs/BENCHMARKS.md records the figures.
bench-mcp:
	$(GO) test -run '^$$' -bench 'BenchmarkMCP$$' -benchtime 300x -timeout 60m ./internal/mcpbench/
	$(GO) test -run '^$$' -bench 'BenchmarkMCPProcesses' -benchtime 12000x -timeout 30m ./internal/mcpbench/
	$(GO) test -run '^$$' -bench 'BenchmarkToolsCall|BenchmarkEncodeResult|BenchmarkAppendToolResponse' -benchmem -count 5 ./mcp/
