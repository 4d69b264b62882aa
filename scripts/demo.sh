#!/usr/bin/env bash
# kisvault end to end against a local fake KIS (kis-mock) on loopback: a throwaway vault,
# a few hundred generated accounts, bulk issuance with progress, status, exec, audit.
# Nothing here touches your own vault or the real KIS hosts.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$(swift build --show-bin-path)}
KV="$BIN/kisvault"
WORK=$(mktemp -d -t kisvault-demo.XXXXXX)
MOCK_PID=""
cleanup() {
  [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A throwaway vault; the demo passphrase comes from the environment (documented as the
# least safe source: fine for a demo vault that is deleted at the end).
export KISVAULT_PATH="$WORK/vault/vault.db"
export KISVAULT_PASSPHRASE="demo passphrase, not a real one"
export HOME="$WORK/home" XDG_DATA_HOME="$WORK/home/.local/share" XDG_RUNTIME_DIR="$WORK/run"

step "generate 250 paper accounts and 50 real ones (fake credentials)"
"$BIN/kis-mock" generate --count 250 --env mock --prefix paper > "$WORK/accounts.csv"
"$BIN/kis-mock" generate --count 50 --env real --prefix live | tail -n +2 >> "$WORK/accounts.csv"
head -c 160 "$WORK/accounts.csv"; echo " ..."

step "start kis-mock on a free loopback port, 40 ms latency ± 20 ms"
"$BIN/kis-mock" serve --port 0 --accounts "$WORK/accounts.csv" --latency-ms 40 --latency-jitter-ms 20 > "$WORK/mock.out" &
MOCK_PID=$!
for _ in $(seq 100); do grep -q listening "$WORK/mock.out" 2>/dev/null && break; sleep 0.05; done
export KISVAULT_KIS_BASE_URL=$(awk '/listening on/ {print $3}' "$WORK/mock.out")
echo "kis-mock at $KISVAULT_KIS_BASE_URL (KISVAULT_KIS_BASE_URL points kisvault there)"

step "kisvault init (Argon2id MODERATE: about half a second per unlock)"
"$KV" init

step "kisvault account import: all 300 rows in one transaction"
"$KV" account import "$WORK/accounts.csv"
"$KV" account list | head -5; echo "..."

step "kisvault doctor"
"$KV" doctor

step "bulk-issue approval keys: 32 at a time"
"$KV" approval issue --all --concurrency 32 > "$WORK/approval-report.txt"
tail -3 "$WORK/approval-report.txt"

step "bulk-issue access tokens"
"$KV" token issue --all --concurrency 32 > "$WORK/token-report.txt"
tail -3 "$WORK/token-report.txt"

step "issue again: everything is fresh, nothing is sent to KIS"
"$KV" approval issue --all --quiet > /dev/null

step "status (no passphrase needed)"
KISVAULT_PASSPHRASE= "$KV" token status | head -5; echo "..."

step "a script gets its token from the vault: cached, no request"
"$KV" token get paper-0001 --format json | sed -E 's/("access_token" : ")(.{12}).*(")/\1\2…\3/'

step "kisvault exec: credentials in a child's environment (values masked here)"
"$KV" exec live-0001 --approval --token -- sh -c '
  for v in KIS_ENV KIS_BASE_URL KIS_WS_URL KIS_APPKEY KIS_APPSECRET KIS_ACCOUNT_NO KIS_APPROVAL_KEY KIS_ACCESS_TOKEN; do
    val=$(printenv "$v" || true); printf "%-18s %s\n" "$v" "$(printf %s "$val" | cut -c1-6)…"
  done'

step "what the mock saw"
curl -s "$KISVAULT_KIS_BASE_URL/__mock/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("requests:", s["requests"]); print("outcomes:", s["outcomes"])'

step "audit log (tail) and its verification"
"$KV" audit list | tail -4
"$KV" audit verify

step "done: the mock is stopped and the throwaway vault deleted"
