#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: Debian's server binaries, a cluster
# made with initdb in a temporary directory, owned by an unprivileged user (the server
# refuses to run as root, and CI runs as root), listening on a free loopback port and on a
# socket in that directory. The command gets KISVAULT_TEST_PG_URL (TCP, password auth),
# KISVAULT_TEST_PG_SOCKET_URL (the socket), PGPASSWORD, KISVAULT_TEST_PG_CTL (a
# script that stops, starts or fails over the server), and KISVAULT_TEST_PG_CA / KISVAULT_TEST_PG_OTHER_CA:
# the server offers TLS with a certificate for 127.0.0.1 and localhost signed by a
# throwaway CA (the first), so sslmode=verify-full is tested against a real chain, and a
# second CA that signed nothing of the server's. The cluster is stopped and
# removed when the command ends, whatever its outcome; the command's status is the
# script's.
#
#   scripts/with-postgres.sh swift test --skip-build
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bindir/initdb" ] || { echo "with-postgres: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
    runas=postgres
    id "$runas" >/dev/null 2>&1 || { echo "with-postgres: no 'postgres' user to run the server as" >&2; exit 1; }
    as() { setpriv --reuid="$runas" --regid="$(id -g "$runas")" --init-groups -- "$@"; }
else
    as() { "$@"; }
fi

dir=$(mktemp -d /tmp/kisvault-pg.XXXXXX)
chmod 0755 "$dir"
mkdir "$dir/data" "$dir/run"
[ "$(id -u)" = 0 ] && chown "$runas" "$dir/data" "$dir/run"
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$password" > "$dir/pwfile"
chmod 0644 "$dir/pwfile"

stop() {
    as "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    [ -f "$dir/standby/PG_VERSION" ] && { as "$bindir/pg_ctl" -D "$dir/standby" -m immediate stop >/dev/null 2>&1 || true; }
    rm -rf "$dir"
}
trap stop EXIT INT TERM

as "$bindir/initdb" -D "$dir/data" -U kisvault --pwfile="$dir/pwfile" -A scram-sha-256 --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pwfile"
# Local socket connections of the cluster's own user are trusted, so the socket URL is
# tested without a password; TCP needs the password.
sed -i 's/^local\s\+all\s\+all\s\+scram-sha-256/local all all trust/' "$dir/data/pg_hba.conf"

# A CA, a server certificate it signs (for 127.0.0.1 and localhost), and a CA that signs
# nothing of the server's.
mkdir "$dir/tls"
(
    cd "$dir/tls"
    for ca in ca other-ca; do
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kisvault test $ca" -keyout "$ca.key" -out "$ca.pem" 2>/dev/null
    done
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem 2>/dev/null
) || { echo "with-postgres: cannot make the test certificates (openssl)" >&2; exit 1; }
chmod 0644 "$dir/tls/"*.pem
chmod 0600 "$dir/tls/server.key"
[ "$(id -u)" = 0 ] && chown "$runas" "$dir/tls/server.key"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
options="-c listen_addresses=127.0.0.1 -p $port -k $dir/run -c fsync=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$dir/tls/server.pem -c ssl_key_file=$dir/tls/server.key"
as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/run/server.log" -w -t 60 -o "$options" start >/dev/null \
    || { cat "$dir/run/server.log" >&2; exit 1; }
as "$bindir/psql" -h "$dir/run" -p "$port" -U kisvault -d postgres -qc "CREATE DATABASE kisvault_test" >/dev/null

# The server's fault tests drive it with this script: `ctl stop|start`; `ctl standby`
# (a streaming standby of it in $dir/standby, on a port of its own, made synchronous);
# `ctl failover` (the primary dies, the standby is promoted and takes over the primary's
# port and socket, as a virtual address would move; stop and start then act on it). The
# server must keep none of the caller's descriptors (a test runner's pipes and sockets,
# which it would then hold open forever): Python's subprocess closes every one above
# stderr in the child, and the server's output goes to its log. The script itself stays a
# root process (Foundation's Process never reaps a child that changed its user).
mkdir -m 0700 "$dir/standby" && mkdir "$dir/run2"
[ "$(id -u)" = 0 ] && chown "$runas" "$dir/standby" "$dir/run2"
prefix=""
[ "$(id -u)" = 0 ] && prefix="'setpriv', '--reuid=$runas', '--regid=$(id -g "$runas")', '--init-groups', '--',"
cat > "$dir/ctl" <<CTL
#!/usr/bin/env python3
import os, socket, subprocess, sys, time
D, BIN, PORT, OPTIONS = "$dir", "$bindir", "$port", "$options"
PREFIX = [$prefix]
def run(*command):
    return subprocess.run(PREFIX + list(command), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, close_fds=True).returncode
def active():
    return open(D + "/active").read().strip() if os.path.exists(D + "/active") else D + "/data"
def pg_ctl(data, action, options=OPTIONS, log=D + "/run/server.log", mode="fast"):
    return run(BIN + "/pg_ctl", "-D", data, "-l", log, "-m", mode, "-w", "-t", "60", "-o", options, action)
def sql(text, port=PORT, host=D + "/run"):
    return subprocess.run(PREFIX + [BIN + "/psql", "-h", host, "-p", port, "-U", "kisvault", "-d", "postgres", "-Atqc", text],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, close_fds=True).stdout.strip()
command = sys.argv[1:]
if command in (["stop"], ["start"]):
    sys.exit(pg_ctl(active(), command[0]))
if command == ["standby"]:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = str(s.getsockname()[1]); s.close()
    status = run(BIN + "/pg_basebackup", "-d", "host=%s/run port=%s user=kisvault application_name=standby" % (D, PORT),
                 "-D", D + "/standby", "-R", "-X", "stream", "--checkpoint=fast")
    status = status or pg_ctl(D + "/standby", "start", options="-c listen_addresses=127.0.0.1 -p %s -k %s/run2 -c fsync=off -c max_connections=200" % (port, D),
                              log=D + "/run2/server.log")
    sql("ALTER SYSTEM SET synchronous_standby_names = 'standby'")
    sql("SELECT pg_reload_conf()")
    for _ in range(300):
        if sql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'") == "sync":
            sys.exit(status)
        time.sleep(0.1)
    sys.exit(status or 1)
if command == ["failover"]:
    status = pg_ctl(D + "/data", "stop", mode="immediate")
    status = status or run(BIN + "/pg_ctl", "-D", D + "/standby", "-w", "-t", "60", "promote")
    status = status or pg_ctl(D + "/standby", "stop", log=D + "/run2/server.log")
    status = status or pg_ctl(D + "/standby", "start")
    open(D + "/active", "w").write(D + "/standby")
    sys.exit(status)
sys.exit("usage: ctl stop|start|standby|failover")
CTL
chmod 0755 "$dir/ctl"

export PGPASSWORD="$password"
export KISVAULT_TEST_PG_URL="postgres://kisvault@127.0.0.1:$port/kisvault_test"
export KISVAULT_TEST_PG_SOCKET_URL="postgres://kisvault@localhost:$port/kisvault_test?host=$dir/run"
export KISVAULT_TEST_PG_BIN="$bindir"
export KISVAULT_TEST_PG_DATA="$dir/data"
export KISVAULT_TEST_PG_CTL="$dir/ctl"
export KISVAULT_TEST_PG_CA="$dir/tls/ca.pem"
export KISVAULT_TEST_PG_OTHER_CA="$dir/tls/other-ca.pem"
set +e
"$@"
status=$?
set -e
exit $status
