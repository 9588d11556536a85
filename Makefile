# The two commands in the README: `make demo` and `make test`.
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export DATABASE_URL
GO ?= go

.PHONY: build demo test bench vet

build:
	$(GO) build -o bin/warden ./cmd/warden

demo: build
	bin/warden demo

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./tools/sql/ ./recorder/
