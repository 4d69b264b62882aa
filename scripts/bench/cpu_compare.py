#!/usr/bin/env python3
"""CPU per issued credential of two or more kisvault builds, side by side in one run.

Usage: python3 scripts/bench/cpu_compare.py RUNS BIN_DIR [BIN_DIR ...]

Each BIN_DIR holds a `kisvault` (and the first one a `kis-mock`). One mock at 50 ms
latency serves 1,000 generated accounts; each round runs every build once, in turn, on a
fresh vault with the cheapest KDF: `approval issue --all --concurrency 32`. Reports the
median, spread and minimum of user + sys time per credential for each build, and the
median wall time of the run. Alternating
the builds round by round is what makes the comparison fair on a shared, noisy machine.

To compare with an older commit:
    git worktree add /tmp/kv-old COMMIT
    (cd /tmp/kv-old && swift build -c release --static-swift-stdlib --scratch-path .build-static)
    python3 scripts/bench/cpu_compare.py 13 /tmp/kv-old/.build-static/release .build-static/release
"""
import os, resource, statistics, subprocess, sys, tempfile, time

runs, bins = int(sys.argv[1]), sys.argv[2:]
work = tempfile.mkdtemp(prefix="kisvault-cpu-")
mock_bin = os.path.join(bins[0], "kis-mock")
accounts = os.path.join(work, "accounts.csv")
with open(accounts, "wb") as f:
    f.write(subprocess.run([mock_bin, "generate", "--count", "1000", "--env", "real", "--prefix", "acct"],
                           capture_output=True, check=True).stdout)
mock = subprocess.Popen([mock_bin, "serve", "--port", "0", "--accounts", accounts, "--latency-ms", "50"],
                        stdout=subprocess.PIPE, text=True)
url = mock.stdout.readline().split()[-1]


def env(i):
    return dict(os.environ, HOME=work, XDG_DATA_HOME=work + "/xdg", XDG_RUNTIME_DIR=work + "/run",
                KISVAULT_PATH=f"{work}/v{i}.db", KISVAULT_PASSPHRASE="bench", KISVAULT_KIS_BASE_URL=url)


def fresh_vault(i, kisvault):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{work}/v{i}.db{suffix}")
        except FileNotFoundError:
            pass
    subprocess.run([kisvault, "init", "--kdf", "insecure-test"], env=env(i), check=True, capture_output=True)
    subprocess.run([kisvault, "account", "import", accounts], env=env(i), check=True, capture_output=True)


cpu = {b: [] for b in bins}
wall = {b: [] for b in bins}
try:
    for _ in range(runs):
        for i, b in enumerate(bins):
            kisvault = os.path.join(b, "kisvault")
            fresh_vault(i, kisvault)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run([kisvault, "approval", "issue", "--all", "--concurrency", "32", "--quiet"],
                           env=env(i), check=True, capture_output=True)
            wall[b].append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            # Seconds for 1,000 credentials are numerically milliseconds per credential.
            cpu[b].append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
finally:
    mock.terminate()
    mock.wait()
for b in bins:
    print(f"{b}: CPU per credential median {statistics.median(cpu[b]):.3f} ms, "
          f"stdev {statistics.stdev(cpu[b]):.3f}, min {min(cpu[b]):.3f}; wall median {statistics.median(wall[b]):.3f} s "
          f"(ideal ceil(1000/32) x 50 ms = 1.600 s) ({runs} runs)")
