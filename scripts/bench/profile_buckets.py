#!/usr/bin/env python3
"""Sorts the samples of a `perf record --call-graph dwarf` of a bulk run into the parts of
the work, for docs/BENCHMARKS.md's "what is left".

    perf record -F 10000 --call-graph dwarf,32768 -o perf.data \
        kisvault approval issue --all --concurrency 32 --quiet
    perf script -i perf.data -F comm,ip,sym > stacks.txt
    python3 scripts/bench/profile_buckets.py stacks.txt

Each sample goes to the innermost matching part of its stack (Swift symbols are matched
mangled); samples matching none are counted by thread.
"""
import collections, re, sys

PARTS = [
    ("start-up: argument parsing", r"ArgumentParser"),
    ("vault open and unlock", r"VaultStore0A0C4open|VaultStore.*unlockE"),
    ("initial snapshots", r"issuanceSnapshots"),
    ("claim transactions", r"ClaimDispenser"),
    ("commit transactions", r"Committer"),
    ("SQLite COMMIT (WAL write, fsync)", r"GRDB8DatabaseC6commit"),
    ("sealing credentials", r"KeyManagerAAC4seal"),
    ("opening appkey/appsecret", r"openAppCredentials"),
    ("KISClient (ours)", r"KISClientC8postOnce"),
    ("request JSON", r"KISClientC10jsonObject"),
    ("response JSON (JSONSerialization)", r"JSONSerialization"),
    ("AsyncHTTPClient on the task pool", r"AsyncHTTPClient0B0C|AsyncHTTPClient11Transaction"),
    ("NIO event loop (sockets, HTTP parsing)", r"SelectableEventLoopC3run"),
    ("bulk bookkeeping", r"bulkOne|KeyManagerAAC4bulk"),
]

counts, total = collections.Counter(), 0
comm, stack = None, []


def flush():
    global total
    if comm is None:
        return
    total += 1
    part = None
    for frame in reversed(stack):  # root first; the innermost match wins
        for name, pattern in PARTS:
            if re.search(pattern, frame):
                part = name
    counts[part or f"other ({comm})"] += 1


for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line and not line.startswith("\t"):
        flush()
        comm, stack = line.split()[0], []
    elif line.strip():
        stack.append(line.strip())
flush()
for name, n in counts.most_common():
    print(f"{100 * n / total:5.1f}%  {name}")
