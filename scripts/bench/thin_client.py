#!/usr/bin/env python3
"""Where a cached `approval get` through the agent spends its time, for one or more builds
side by side in one run (issue: the seam, "through the agent, the CLI is a thin client").

Usage: python3 scripts/bench/thin_client.py ROUNDS MOCK_BIN NAME=BIN_DIR [NAME=BIN_DIR ...]

Each BIN_DIR holds a `kisvault`; MOCK_BIN is a `kis-mock` (not measured). Per build, with
its own agent over a one-account vault whose key is already stored, each round runs in
turn, builds alternating:
- `kisvault --version`, process start to exit: the CLI's own start;
- `kisvault approval get NAME` through the agent, process start to exit;
- a raw `GET /v1/accounts/NAME/approval-key` on a new connection: the agent's time to
  first byte and to the whole answer, from connect;
- a raw `GET /v1/status` on a new connection (no credential read): the per-connection and
  HTTP cost alone.
Medians over all rounds. The split printed: get = start (--version) + the round trip
(raw answer) + the rest of the CLI's work (arguments, environment, the vault's identity,
the socket's trust checks, decoding and printing).
"""
import os, shutil, socket, statistics, subprocess, sys, tempfile, time

rounds, mock_bin = int(sys.argv[1]), sys.argv[2]
builds = dict(arg.split("=", 1) for arg in sys.argv[3:])
work = tempfile.mkdtemp(prefix="kisvault-thin-")
accounts = os.path.join(work, "accounts.csv")
with open(accounts, "wb") as f:
    f.write(subprocess.run([mock_bin, "generate", "--count", "1", "--env", "real", "--prefix", "acct"],
                           capture_output=True, check=True).stdout)
name = "acct-0001"
mock = subprocess.Popen([mock_bin, "serve", "--port", "0", "--accounts", accounts], stdout=subprocess.PIPE, text=True)
url = mock.stdout.readline().split()[-1]
agents, envs = {}, {}


def raw(sock_path, target):
    """(time to first byte, time to the whole answer) in ms, from connect."""
    start = time.perf_counter()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n".encode())
    first = s.recv(65536)
    ttfb = time.perf_counter() - start
    data = first
    while chunk := s.recv(65536):
        data += chunk
    total = time.perf_counter() - start
    s.close()
    assert b" 200 " in data.split(b"\r\n", 1)[0], data[:200]
    return ttfb * 1000, total * 1000


def timed(argv, env):
    start = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    assert r.returncode == 0, r.stderr.decode()
    return elapsed


try:
    for label, bindir in builds.items():
        home = os.path.join(work, label)
        os.makedirs(os.path.join(home, "run"), mode=0o700)
        env = dict(os.environ, HOME=home, KISVAULT_PATH=os.path.join(home, "vault.db"), KISVAULT_PASSPHRASE="bench-passphrase",
                   KISVAULT_KIS_BASE_URL=url, KISVAULT_AGENT_SOCK=os.path.join(home, "run", "agent.sock"))
        env.pop("XDG_RUNTIME_DIR", None)
        kv = os.path.join(bindir, "kisvault")
        subprocess.run([kv, "init", "--kdf", "insecure-test"], env=env, check=True, capture_output=True)
        subprocess.run([kv, "account", "import", accounts], env=env, check=True, capture_output=True)
        subprocess.run([kv, "agent", "start", "--idle-lock", "1h"], env=env, check=True, capture_output=True)
        client = dict(env)
        client.pop("KISVAULT_PASSPHRASE")
        subprocess.run([kv, "approval", "get", name], env=client, check=True, capture_output=True)
        agents[label], envs[label] = (kv, env["KISVAULT_AGENT_SOCK"]), client
    results = {label: {"version": [], "get": [], "ttfb": [], "answer": [], "status_ttfb": []} for label in builds}
    for _ in range(rounds):
        for label in builds:
            kv, sock = agents[label]
            r = results[label]
            r["version"].append(timed([kv, "--version"], envs[label]))
            r["get"].append(timed([kv, "approval", "get", name], envs[label]))
            ttfb, answer = raw(sock, f"/v1/accounts/{name}/approval-key?min_ttl=600")
            r["ttfb"].append(ttfb)
            r["answer"].append(answer)
            r["status_ttfb"].append(raw(sock, "/v1/status")[0])
    print(f"{rounds} rounds, builds alternating; medians in ms")
    print("| build | --version | get via agent | get ÷ --version | agent TTFB (key, new connection) | agent TTFB (status) | whole answer | CLI's own work besides start and the round trip |")
    print("|---|---|---|---|---|---|---|---|")
    for label in builds:
        m = {k: statistics.median(v) for k, v in results[label].items()}
        rest = m["get"] - m["version"] - m["answer"]
        print(f"| {label} | {m['version']:.2f} | {m['get']:.2f} | **{m['get'] / m['version']:.2f}** | {m['ttfb']:.2f} | {m['status_ttfb']:.2f} | {m['answer']:.2f} | {rest:.2f} |")
finally:
    for label, (kv, sock) in agents.items():
        subprocess.run([kv, "agent", "stop"], env=envs[label], capture_output=True)
    mock.terminate()
    shutil.rmtree(work, ignore_errors=True)
