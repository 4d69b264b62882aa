#!/usr/bin/env python3
"""Bulk issuance by two builds side by side, on both backends, in one run.

Usage (a throwaway cluster on loopback, as `make test` makes):
    bash scripts/with-postgres.sh python3 scripts/bench/bulk_ab.py ROUNDS BIN_DIR...

Each BIN_DIR holds a release `kisvault` (the last one's `kis-mock` serves). Each round runs
`approval issue --all --concurrency 32` over 1,000 fresh accounts, mock at 50 ms, for every
build on the SQLite file and on PostgreSQL in turn (the ideal is 1.6 s). Prints the median
and every sample per build and backend.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time, uuid

rounds, bins = int(sys.argv[1]), sys.argv[2:]
pg = os.environ["KISVAULT_TEST_PG_URL"]
work = tempfile.mkdtemp(prefix="kisvault-bulk-ab-")
mock_bin = os.path.join(bins[-1], "kis-mock")
accounts = os.path.join(work, "a1000.csv")
with open(accounts, "wb") as f:
    f.write(subprocess.run([mock_bin, "generate", "--count", "1000", "--env", "real", "--prefix", "acct"],
                           capture_output=True, check=True).stdout)
mock = subprocess.Popen([mock_bin, "serve", "--port", "0", "--accounts", accounts, "--latency-ms", "50"], stdout=subprocess.PIPE, text=True)
url = mock.stdout.readline().split()[-1]


def run(bindir, vault, args):
    env = dict(os.environ, HOME=work, XDG_RUNTIME_DIR=work, KISVAULT_PATH=vault, KISVAULT_PASSPHRASE="bench", KISVAULT_KIS_BASE_URL=url)
    started = time.perf_counter()
    r = subprocess.run([os.path.join(bindir, "kisvault")] + args, env=env, capture_output=True)
    assert r.returncode == 0, (args, r.stderr[-400:])
    return time.perf_counter() - started


times = {}
try:
    for _ in range(rounds):
        for bindir in bins:
            for backend in ("sqlite", "postgres"):
                vault = os.path.join(work, uuid.uuid4().hex[:8] + ".db") if backend == "sqlite" else pg + "?schema=ab_" + uuid.uuid4().hex[:10]
                run(bindir, vault, ["init", "--kdf", "insecure-test"])
                run(bindir, vault, ["account", "import", accounts])
                times.setdefault((bindir, backend), []).append(run(bindir, vault, ["approval", "issue", "--all", "--concurrency", "32", "--quiet"]))
    for (bindir, backend), samples in times.items():
        print(f"{bindir} {backend}: median {statistics.median(samples):.3f} s  ({', '.join(f'{x:.2f}' for x in samples)})")
finally:
    mock.terminate()
    shutil.rmtree(work, ignore_errors=True)
