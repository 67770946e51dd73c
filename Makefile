# MiniTrue: each target is one line of intent. `make help` lists them.
.PHONY: help cluster test lint unit frontend-test bench fmt

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

cluster: ## build and start a three-node local cluster, broker, simulator and dashboard (Ctrl-C stops it)
	./run_cluster.sh

test: lint unit frontend-test ## every check CI runs: format, lints, docs, Rust and dashboard tests

lint: ## rustfmt, clippy with warnings denied, rustdoc without warnings
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

unit: ## Rust unit, property and integration tests (real processes on loopback)
	cargo test --release

frontend-test: ## dashboard unit tests (Vitest) and production build
	cd frontend && npm ci --no-audit --no-fund && npm test && npm run build

bench: ## storage and node-server benchmarks; print tables and record them in docs/benchmarks.md
	cargo bench --bench storage
	cargo bench --bench server

fmt: ## format the code
	cargo fmt --all
