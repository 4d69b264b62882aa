#!/usr/bin/env bash
# Several machines, one team vault, nothing shared but the network: three network
# namespaces (ip netns, veth pairs to a bridge-less star in the root namespace), each with
# its own loopback and its own kis-mock, run kisvault against one PostgreSQL server that
# listens only on the veth side, over TLS (a throwaway self-signed certificate,
# sslmode=require). Not part of `make test`: it needs root and iproute2.
#
#   sudo bash scripts/team-sim.sh [PROCESSES_PER_MACHINE [ACCOUNTS]]      (default 10, 300)
#
# Checks: every process of every machine gets the same access token of one account, and
# the three mocks together saw exactly one /oauth2/tokenP request; then `approval issue
# --all` from all three machines at once over ACCOUNTS accounts makes exactly ACCOUNTS
# requests.
set -euo pipefail
per=${1:-10}
count=${2:-300}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "team-sim: needs root (network namespaces)" >&2; exit 1; }
bin=.build/debug
[ -x $bin/kisvault ] && [ -x $bin/kis-mock ] || swift build >/dev/null
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

work=$(mktemp -d /tmp/kisvault-team-sim.XXXXXX)
chmod 755 "$work"
machines=(m1 m2 m3)
cleanup() {
    for m in "${machines[@]}"; do
        ip netns pids "ks-$m" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "ks-$m" 2>/dev/null || true
        ip link del "ks-$m-h" 2>/dev/null || true
    done
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The network: host side 10.211.N.1, machine side 10.211.N.2, one /30 per machine.
for i in "${!machines[@]}"; do
    m=${machines[$i]}; n=$((i + 1))
    ip netns add "ks-$m"
    ip link add "ks-$m-h" type veth peer name "ks-$m-c"
    ip link set "ks-$m-c" netns "ks-$m"
    ip addr add "10.211.$n.1/30" dev "ks-$m-h"; ip link set "ks-$m-h" up
    ip netns exec "ks-$m" ip addr add "10.211.$n.2/30" dev "ks-$m-c"
    ip netns exec "ks-$m" ip link set "ks-$m-c" up
    ip netns exec "ks-$m" ip link set lo up
done

# The server: TLS on, listening on the host ends of the veths only.
mkdir "$work/data" "$work/run"; chown postgres "$work/data" "$work/run"
as() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$password" > "$work/pw"; chmod 644 "$work/pw"
as "$pgbin/initdb" -D "$work/data" -U kisvault --pwfile="$work/pw" -A scram-sha-256 --no-sync >/dev/null
rm -f "$work/pw"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=team-sim" \
    -keyout "$work/data/server.key" -out "$work/data/server.crt" >/dev/null 2>&1
chown postgres "$work/data/server.key" "$work/data/server.crt"; chmod 600 "$work/data/server.key"
echo "hostssl all all 10.211.0.0/16 scram-sha-256" >> "$work/data/pg_hba.conf"
sed -i 's/^local\s\+all\s\+all\s\+scram-sha-256/local all all trust/' "$work/data/pg_hba.conf"
as "$pgbin/pg_ctl" -D "$work/data" -l "$work/run/log" -w -o "-c listen_addresses=10.211.1.1,10.211.2.1,10.211.3.1 -c ssl=on -p 5432 -k $work/run -c max_connections=300" start >/dev/null
as "$pgbin/psql" -h "$work/run" -U kisvault -d postgres -qc "CREATE DATABASE team" >/dev/null

# Each machine: its own kis-mock on its own loopback, the same accounts.
$bin/kis-mock generate --count "$count" --env real --prefix acct > "$work/accounts.csv"
for i in "${!machines[@]}"; do
    m=${machines[$i]}
    ( trap - EXIT INT TERM; exec ip netns exec "ks-$m" $bin/kis-mock serve --port 18000 --accounts "$work/accounts.csv" --latency-ms 50 > "$work/mock-$m.log" 2>&1 ) &
    disown
done
sleep 1
run() {  # run MACHINE ARGS...: kisvault on that machine, reaching the server over its veth
    local m=$1; shift
    local n=$(( ${m#m} ))
    ip netns exec "ks-$m" env -i PATH=/usr/bin:/bin HOME="$work/home-$m" PGPASSWORD="$password" KISVAULT_PASSPHRASE=team \
        KISVAULT_HOST_ID="$m" KISVAULT_KIS_BASE_URL=http://127.0.0.1:18000 \
        KISVAULT_PATH="postgres://kisvault@10.211.$n.1:5432/team?sslmode=require" $bin/kisvault "$@"
}
for m in "${machines[@]}"; do mkdir -p "$work/home-$m"; done
run m1 init --kdf insecure-test 2>/dev/null
run m1 account import "$work/accounts.csv" >/dev/null 2>&1
requests() {  # the sum over the three mocks of PATH's requests
    local total=0
    for m in "${machines[@]}"; do
        c=$(ip netns exec "ks-$m" curl -s http://127.0.0.1:18000/__mock/stats | python3 -c "import json,sys; print(json.load(sys.stdin)['requests']['$1'])")
        total=$((total + c))
    done
    echo $total
}

echo "== ${#machines[@]} machines x $per processes ask for one account's token"
for m in "${machines[@]}"; do
    # (A background subshell would run the EXIT trap's cleanup when it ends: cleared.)
    for _ in $(seq "$per"); do ( trap - EXIT INT TERM; run "$m" token get acct-0001 > "$work/tok-$m-$RANDOM$RANDOM" 2>>"$work/errors" ) & pids+=($!); done
done
wait "${pids[@]}" || true
tokens=$(cat "$work"/tok-* | sort -u | wc -l)
echo "distinct tokens: $tokens; /oauth2/tokenP requests over all mocks: $(requests /oauth2/tokenP)"

echo "== approval issue --all ($count accounts) from every machine at once"
pids=()
for m in "${machines[@]}"; do ( trap - EXIT INT TERM; run "$m" approval issue --all --concurrency 16 --quiet > "$work/issue-$m" 2>&1 ) & pids+=($!); done
wait "${pids[@]}" || true
echo "/oauth2/Approval requests over all mocks: $(requests /oauth2/Approval) ($count expected)"
[ -s "$work/errors" ] && { echo "errors:"; head -5 "$work/errors"; }
[ "$tokens" = 1 ] && [ "$(requests /oauth2/tokenP)" = 1 ] && [ "$(requests /oauth2/Approval)" = "$count" ] && echo "team-sim: OK" || { echo "team-sim: FAILED"; exit 1; }
