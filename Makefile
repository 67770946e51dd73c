# MiniTrue: each target is one line of intent. `make help` lists them.
.PHONY: help cluster test lint unit bench fmt

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

cluster: ## build and start a three-node local cluster with the simulator (not built yet: see README)
	@echo "make cluster arrives with the node server and cluster work (issues 3-5); today the repo holds the storage engine only." >&2; exit 1

test: lint unit ## every check CI runs: format, lints, docs, unit + integration tests

lint: ## rustfmt, clippy with warnings denied, rustdoc without warnings
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

unit: ## unit, property and integration tests
	cargo test --release

bench: ## storage and node-server benchmarks; print tables and record them in docs/benchmarks.md
	cargo bench --bench storage
	cargo bench --bench server

fmt: ## format the code
	cargo fmt --all
