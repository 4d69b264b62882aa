#!/usr/bin/env python3
"""`account list` of 10,000 accounts by several builds side by side, on both backends.

Usage (a throwaway cluster on loopback, as `make test` makes):
    bash scripts/with-postgres.sh python3 scripts/bench/list_ab.py ROUNDS BIN_DIR...

Each BIN_DIR holds a release `kisvault` (the last one's `kis-mock` generates the
accounts). One vault file and one PostgreSQL schema are filled once, by the last build;
each round lists each vault once with every build in turn, process start to exit, output
read and thrown away. Prints the median and the spread per build and backend. The vaults'
format must be one every build reads.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time, uuid

rounds, bins = int(sys.argv[1]), sys.argv[2:]
work = tempfile.mkdtemp(prefix="kisvault-list-ab-")
accounts = os.path.join(work, "a10000.csv")
with open(accounts, "wb") as f:
    f.write(subprocess.run([os.path.join(bins[-1], "kis-mock"), "generate", "--count", "10000", "--env", "real", "--prefix", "acct"],
                           capture_output=True, check=True).stdout)
vaults = {"sqlite": os.path.join(work, "vault.db"), "postgres": os.environ["KISVAULT_TEST_PG_URL"] + "?schema=l_" + uuid.uuid4().hex[:12]}


def run(bindir, vault, args):
    env = dict(os.environ, HOME=work, KISVAULT_PATH=vault, KISVAULT_PASSPHRASE="bench")
    started = time.perf_counter()
    r = subprocess.run([os.path.join(bindir, "kisvault")] + args, env=env, capture_output=True)
    assert r.returncode == 0, (bindir, args, r.stderr[-400:])
    return time.perf_counter() - started


try:
    for vault in vaults.values():
        run(bins[-1], vault, ["init", "--kdf", "insecure-test"])
        run(bins[-1], vault, ["account", "import", accounts])
    times = {(b, v): [] for b in bins for v in vaults}
    for _ in range(rounds):
        for backend, vault in vaults.items():
            for b in bins:
                times[(b, backend)].append(run(b, vault, ["account", "list"]))
    for (b, backend), samples in times.items():
        ms = sorted(round(s * 1000, 1) for s in samples)
        print(f"{backend:8} {b}: median {statistics.median(ms):.1f} ms  (min {ms[0]}, max {ms[-1]}, {len(ms)} runs)")
finally:
    shutil.rmtree(work, ignore_errors=True)
