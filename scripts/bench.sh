#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md: release build, the bare-Argon2id baseline, wrk, then
# scripts/bench/bench.py. Takes a few minutes (the sequential baseline alone is ~1 minute).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
# The same build as `make install`: release, Swift runtime linked statically.
STATIC="--static-swift-stdlib --scratch-path .build-static"
swift build -c release $STATIC --product kisvault
swift build -c release $STATIC --product kis-mock
BIN=$(swift build -c release $STATIC --show-bin-path)
mkdir -p .build/bench
gcc -O2 -o .build/bench/pwhash scripts/bench/pwhash.c $(pkg-config --cflags --libs libsodium)
python3 scripts/bench/bench.py "$BIN" .build/bench/pwhash
