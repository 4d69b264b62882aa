#!/usr/bin/env python3
"""The team vault (PostgreSQL) beside the vault file (SQLite), one build, one run.

Usage (a throwaway cluster on loopback, as `make test` makes):
    bash scripts/with-postgres.sh python3 scripts/bench/team_vault.py ROUNDS BIN_DIR

BIN_DIR holds `kisvault` and `kis-mock` (a release build: .build-static/release). Each round
runs every measurement on both backends in turn, alternating, on fresh vaults with the
cheapest KDF:
- bulk: `approval issue --all --concurrency 32` over 1,000 accounts, mock at 50 ms
  (the ideal is ceil(1000/32) x 50 ms = 1.6 s);
- cached `approval get` through each backend's agent, process start to exit, and a raw
  agent request on its socket;
- import of 10,000 accounts, and `account list` of them.
Medians over all rounds; the ratios are PostgreSQL over SQLite.
"""
import json, os, shutil, socket, statistics, subprocess, sys, tempfile, time, uuid

rounds, bindir = int(sys.argv[1]), sys.argv[2]
kisvault, mock_bin = os.path.join(bindir, "kisvault"), os.path.join(bindir, "kis-mock")
pg = os.environ["KISVAULT_TEST_PG_URL"]
work = tempfile.mkdtemp(prefix="kisvault-team-")


def generate(count, name):
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(subprocess.run([mock_bin, "generate", "--count", str(count), "--env", "real", "--prefix", "acct"],
                               capture_output=True, check=True).stdout)
    return path


small, large = generate(1000, "a1000.csv"), generate(10000, "a10000.csv")
mock = subprocess.Popen([mock_bin, "serve", "--port", "0", "--accounts", large, "--latency-ms", "50"], stdout=subprocess.PIPE, text=True)
url = mock.stdout.readline().split()[-1]


def location(backend):
    if backend == "sqlite":
        path = os.path.join(work, f"v-{uuid.uuid4().hex[:8]}.db")
        return path
    return pg + "?schema=b_" + uuid.uuid4().hex[:12]


def env(vault, backend):
    return dict(os.environ, HOME=work, XDG_DATA_HOME=work + "/xdg", XDG_RUNTIME_DIR=f"{work}/run-{backend}",
                KISVAULT_PATH=vault, KISVAULT_PASSPHRASE="bench", KISVAULT_KIS_BASE_URL=url)


def run(vault, backend, args, **kw):
    r = subprocess.run([kisvault] + args, env=env(vault, backend), capture_output=True, **kw)
    assert r.returncode == 0, (args, r.stderr[-500:])
    return r


def timed(vault, backend, args):
    t = time.perf_counter()
    run(vault, backend, args)
    return time.perf_counter() - t


def raw(sock, target):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    t = time.perf_counter()
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    assert b" 200 " in data.split(b"\r\n")[0], data[:200]
    return time.perf_counter() - t


times = {b: {"bulk": [], "get-agent": [], "raw": [], "import-10k": [], "list-10k": []} for b in ("sqlite", "postgres")}
try:
    for _ in range(rounds):
        for backend in ("sqlite", "postgres"):
            vault = location(backend)
            run(vault, backend, ["init", "--kdf", "insecure-test"])
            run(vault, backend, ["account", "import", small])
            times[backend]["bulk"].append(timed(vault, backend, ["approval", "issue", "--all", "--concurrency", "32", "--quiet"]))
            os.makedirs(f"{work}/run-{backend}", mode=0o700, exist_ok=True)
            start = run(vault, backend, ["agent", "start"])
            sock = start.stdout.decode().split("=", 1)[1].split(";", 1)[0]
            no_pass = dict(env(vault, backend))
            del no_pass["KISVAULT_PASSPHRASE"]
            for _ in range(7):
                t = time.perf_counter()
                r = subprocess.run([kisvault, "approval", "get", "acct-0042"], env=no_pass, capture_output=True)
                times[backend]["get-agent"].append(time.perf_counter() - t)
                assert r.returncode == 0, r.stderr
            times[backend]["raw"] += [raw(sock, "/v1/accounts/acct-0042/approval-key") for _ in range(40)]
            run(vault, backend, ["agent", "stop"])
            big = location(backend)
            run(vault, backend, ["init", "--kdf", "insecure-test", "--vault", big])
            times[backend]["import-10k"].append(timed(big, backend, ["account", "import", large]))
            times[backend]["list-10k"] += [timed(big, backend, ["account", "list"]) for _ in range(3)]
    result = {}
    for what in times["sqlite"]:
        s, p = statistics.median(times["sqlite"][what]), statistics.median(times["postgres"][what])
        result[what] = {"sqlite_ms": round(s * 1000, 2), "postgres_ms": round(p * 1000, 2), "postgres_over_sqlite": round(p / s, 3),
                        "samples": len(times["sqlite"][what])}
    result["bulk"]["ideal_ms"] = 1600
    print(json.dumps(result, indent=2))
finally:
    mock.terminate()
    shutil.rmtree(work, ignore_errors=True)
