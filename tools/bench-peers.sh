#!/usr/bin/env bash
# `make bench-peers`: installs the peers (Debian packages victoria-metrics and influxdb) when
# they are missing, then runs benches/peers.rs on both data sets. A package that cannot be
# installed is reported and the bench runs without it (it skips a peer it cannot find).
set -uo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bench-peers] %s\n' "$*"; }

missing=()
command -v victoria-metrics >/dev/null 2>&1 || [ -x /usr/bin/victoria-metrics ] || missing+=(victoria-metrics)
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || missing+=(influxdb)

if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing ${missing[*]} with apt-get..."
    apt-get update -qq || say "warning: apt-get update failed"
    for package in "${missing[@]}"; do
      # The packages' service scripts may not start anything here; we start the binaries.
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" \
        || say "warning: could not install $package; the bench runs without it"
    done
  else
    say "warning: ${missing[*]} missing and apt-get is not usable (needs root); the bench runs without them"
  fi
fi

# The default set, then the label-heavy one (10 000 series of five labels), each recorded.
cargo bench --bench peers || exit $?
MINITRUE_BENCH_SET=labels exec cargo bench --bench peers
