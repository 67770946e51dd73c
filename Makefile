# MiniTrue: each target is one line of intent. `make help` lists them.
.PHONY: help cluster test lint unit pyclients frontend-build frontend-test frontend-e2e bench bench-peers fmt

help:
	@grep -E '^[a-z0-9-]+:.*## ' Makefile | sed 's/:.*## /\t/'

cluster: ## build and start a three-node local cluster, broker, simulator and dashboard (Ctrl-C stops it)
	./run_cluster.sh

test: frontend-test lint unit frontend-e2e ## every check CI runs: dashboard unit tests and build first (so the Rust build embeds it and tests/embedded_dashboard.rs runs), format, lints, docs, Rust, dashboard end-to-end tests

lint: ## rustfmt, clippy with warnings denied, rustdoc without warnings
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

unit: pyclients ## Rust unit, property and integration tests (real processes on loopback)
	cargo test

pyclients: ## a virtualenv with the InfluxDB python clients, for tests/security.rs
	test -x target/pyclients/bin/python || python3 -m venv target/pyclients
	target/pyclients/bin/python -c 'import influxdb, influxdb_client' 2>/dev/null || \
		target/pyclients/bin/pip install -q influxdb influxdb-client

frontend-build: ## the dashboard's packages and production bundle (frontend/dist), which the Rust build embeds
	cd frontend && npm ci --no-audit --no-fund && npm run build

frontend-test: frontend-build ## dashboard unit tests (Vitest)
	cd frontend && npm test

# The bundle is built once per make run (a second build would touch frontend/dist and make
# cargo re-embed it, recompiling the crate), before the binaries, so they embed it.
frontend-e2e: frontend-build ## dashboard end-to-end tests: headless Chromium against a real 3-node cluster (ports 18480-18482, 19400-19402) and a lone node
	cargo build --bins
	cd frontend && npm run test:e2e

bench: ## storage, label-index, PromQL and node-server benchmarks; print tables and record them in docs/benchmarks.md
	cargo bench --bench storage
	cargo bench --bench index
	cargo bench --bench promql
	cargo bench --bench server

bench-peers: ## MiniTrue against VictoriaMetrics and InfluxDB 1.x on the same data (and a 10 k series × 5 labels set) (installs them with apt-get if missing); records docs/benchmarks.md
	./tools/bench-peers.sh

fmt: ## format the code
	cargo fmt --all
