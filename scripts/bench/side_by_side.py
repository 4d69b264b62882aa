#!/usr/bin/env python3
"""Two kisvault builds side by side in one run, alternating: what the hardening changed on
the paths a user waits for.

Usage: python3 scripts/bench/side_by_side.py ROUNDS OLD_BIN_DIR NEW_BIN_DIR

Each BIN_DIR holds a `kisvault`; NEW_BIN_DIR also a `kis-mock`. Measures, per build:
- `account list` over 10,000 accounts (text and --json), process start to exit;
- `approval get` of a cached key through that build's own agent, process start to exit;
- a raw agent request (`GET /v1/accounts/X/approval-key`) on the agent's socket.
Every round runs each build in turn; medians over all rounds. The vault uses the cheapest
KDF so that Argon2id is not what is measured. The KIS URL is a local kis-mock.

To build OLD (the commit before the hardening):
    git worktree add /tmp/kv-old deac448
    (cd /tmp/kv-old && swift build -c release --static-swift-stdlib --scratch-path .build-static --product kisvault)
"""
import json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

rounds, old, new = int(sys.argv[1]), sys.argv[2], sys.argv[3]
builds = {"old": old, "new": new}
work = tempfile.mkdtemp(prefix="kisvault-sbs-")
mock_bin = os.path.join(new, "kis-mock")
accounts = os.path.join(work, "accounts.csv")
with open(accounts, "wb") as f:
    f.write(subprocess.run([mock_bin, "generate", "--count", "10000", "--env", "real", "--prefix", "acct"],
                           capture_output=True, check=True).stdout)
mock = subprocess.Popen([mock_bin, "serve", "--port", "0", "--accounts", accounts], stdout=subprocess.PIPE, text=True)
url = mock.stdout.readline().split()[-1]
vault = os.path.join(work, "vault.db")


def env(name):
    return dict(os.environ, HOME=work, XDG_DATA_HOME=work + "/xdg", XDG_RUNTIME_DIR=f"{work}/run-{name}",
                KISVAULT_PATH=vault, KISVAULT_PASSPHRASE="bench", KISVAULT_KIS_BASE_URL=url)


def run(name, args, **kw):
    return subprocess.run([os.path.join(builds[name], "kisvault")] + args, env=env(name), capture_output=True, **kw)


def wall(name, args):
    t = time.perf_counter()
    r = run(name, args)
    elapsed = time.perf_counter() - t
    assert r.returncode == 0, r.stderr
    return elapsed


def raw(sock, target):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    t = time.perf_counter()
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert b" 200 " in data.split(b"\r\n")[0], data[:200]
    return time.perf_counter() - t


try:
    run("new", ["init", "--kdf", "insecure-test"], check=True)
    run("new", ["account", "import", accounts], check=True)
    target = "acct-00042"
    run("new", ["approval", "get", target], check=True)
    times = {k: {"list": [], "list-json": [], "get-agent": [], "raw": []} for k in builds}
    for _ in range(rounds):
        for name in builds:
            times[name]["list"] += [wall(name, ["account", "list"]) for _ in range(3)]
            times[name]["list-json"] += [wall(name, ["account", "list", "--format", "json"]) for _ in range(3)]
            os.makedirs(f"{work}/run-{name}", mode=0o700, exist_ok=True)
            start = run(name, ["agent", "start"])
            assert start.returncode == 0, start.stderr
            sock = start.stdout.decode().split("=", 1)[1].split(";", 1)[0]
            no_pass = dict(env(name))
            del no_pass["KISVAULT_PASSPHRASE"]
            for _ in range(7):
                t = time.perf_counter()
                r = subprocess.run([os.path.join(builds[name], "kisvault"), "approval", "get", target], env=no_pass, capture_output=True)
                times[name]["get-agent"].append(time.perf_counter() - t)
                assert r.returncode == 0, r.stderr
            times[name]["raw"] += [raw(sock, f"/v1/accounts/{target}/approval-key") for _ in range(40)]
            run(name, ["agent", "stop"])
    result = {}
    for what in ["list", "list-json", "get-agent", "raw"]:
        o, n = statistics.median(times["old"][what]), statistics.median(times["new"][what])
        result[what] = {"old_ms": round(o * 1000, 2), "new_ms": round(n * 1000, 2), "new_over_old": round(n / o, 3),
                        "samples": len(times["old"][what])}
    print(json.dumps(result, indent=2))
finally:
    mock.terminate()
    shutil.rmtree(work, ignore_errors=True)
