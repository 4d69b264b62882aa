#!/usr/bin/env python3
"""kis-mock's WebSocket: the subscribe round trip and `approval check`'s whole session,
one session at a time and 200 at once, beside an approval request in the same run.

Usage: python3 scripts/bench/websocket.py BIN_DIR   (a release build, e.g. .build-static/release)
"""
import json, os, subprocess, sys, tempfile

BIN = sys.argv[1]
MOCK = os.path.join(BIN, "kis-mock")
work = tempfile.mkdtemp(prefix="kisvault-ws-bench-")
accounts = os.path.join(work, "accounts.csv")
with open(accounts, "w") as f:
    f.write(subprocess.run([MOCK, "generate", "--count", "200", "--env", "real"], capture_output=True, check=True, text=True).stdout)
server = subprocess.Popen([MOCK, "serve", "--port", "0", "--accounts", accounts], stdout=subprocess.PIPE, text=True)
try:
    rest = server.stdout.readline().split()[-1]
    ws = server.stdout.readline().split()[-1]
    for sessions, checks in [(1, 300), (200, 1000)]:
        out = subprocess.run([MOCK, "load", "--url", rest, "--accounts", accounts, "--websocket", ws,
                              "--concurrency", str(sessions), "--requests", str(checks)], capture_output=True, check=True, text=True).stdout
        print(json.dumps(json.loads(out)))
finally:
    server.terminate()
    server.wait()
