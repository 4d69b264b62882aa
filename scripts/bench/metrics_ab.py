#!/usr/bin/env python3
"""What scraping the agent's metrics costs: the same work with and without a scraper, in
one run, rounds interleaved.

Usage:
    python3 scripts/bench/metrics_ab.py ROUNDS BIN_DIR

BIN_DIR holds a release `kisvault` and `kis-mock`. One agent with `--metrics` serves a
vault of 1,000 accounts (mock at 50 ms). Each round, once with a thread fetching /metrics
every second and once without (the order alternating): `approval rotate --all
--concurrency 32` through the agent, then 200 cached `approval get` through it. Prints the
medians and the ratio scraped / unscraped for each.
"""
import os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

rounds, bindir = int(sys.argv[1]), sys.argv[2]
kisvault, mock_bin = os.path.join(bindir, "kisvault"), os.path.join(bindir, "kis-mock")
work = tempfile.mkdtemp(prefix="kisvault-metrics-ab-")
os.chmod(work, 0o700)
accounts = os.path.join(work, "a1000.csv")
with open(accounts, "wb") as f:
    f.write(subprocess.run([mock_bin, "generate", "--count", "1000", "--env", "real", "--prefix", "acct"], capture_output=True, check=True).stdout)
mock = subprocess.Popen([mock_bin, "serve", "--port", "0", "--accounts", accounts, "--latency-ms", "50"], stdout=subprocess.PIPE, text=True)
url = mock.stdout.readline().split()[-1]
env = dict(os.environ, HOME=work, XDG_RUNTIME_DIR=work, KISVAULT_PATH=os.path.join(work, "vault.db"),
           KISVAULT_PASSPHRASE="bench", KISVAULT_KIS_BASE_URL=url)


def run(args, environment=env):
    r = subprocess.run([kisvault] + args, env=environment, capture_output=True)
    assert r.returncode == 0, (args, r.stderr[-400:])
    return r


s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
run(["init", "--kdf", "insecure-test"])
run(["account", "import", accounts])
agent = subprocess.Popen([kisvault, "agent", "start", "--foreground", "--idle-lock", "0s", "--metrics", f"127.0.0.1:{port}"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
socket_path = os.path.join(work, "kisvault", "agent.sock")
for _ in range(200):
    if os.path.exists(socket_path): break
    time.sleep(0.05)
no_passphrase = {k: v for k, v in env.items() if k != "KISVAULT_PASSPHRASE"}
run(["approval", "issue", "--all", "--concurrency", "32", "--quiet"], no_passphrase)


def scraper(stop, scrapes):
    while not stop.wait(1.0):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as answer:
            answer.read()
        scrapes.append(1)


results = {True: {"bulk": [], "get": []}, False: {"bulk": [], "get": []}}
scraped = 0
try:
    for index in range(rounds):
        for scraping in ((True, False) if index % 2 == 0 else (False, True)):
            stop, scrapes = threading.Event(), []
            thread = threading.Thread(target=scraper, args=(stop, scrapes)) if scraping else None
            if thread: thread.start()
            started = time.perf_counter()
            run(["approval", "rotate", "--all", "--concurrency", "32", "--quiet"], no_passphrase)
            results[scraping]["bulk"].append(time.perf_counter() - started)
            started = time.perf_counter()
            for _ in range(200):
                run(["approval", "get", "acct-0001"], no_passphrase)
            results[scraping]["get"].append((time.perf_counter() - started) / 200)
            if thread:
                stop.set(); thread.join()
                scraped += len(scrapes)
    for what, unit, scale in (("bulk", "s", 1), ("get", "ms", 1000)):
        a, b = statistics.median(results[True][what]), statistics.median(results[False][what])
        print(f"{what}: scraped {a * scale:.2f} {unit}, unscraped {b * scale:.2f} {unit}, ratio {a / b:.3f}"
              f"  (scraped {', '.join(f'{x * scale:.2f}' for x in results[True][what])};"
              f" unscraped {', '.join(f'{x * scale:.2f}' for x in results[False][what])})")
    print(f"{scraped} scrapes")
finally:
    agent.terminate()
    mock.terminate()
    shutil.rmtree(work, ignore_errors=True)
