#!/usr/bin/env python3
"""Resident memory and throughput of the Argon2-bound endpoints, alone.

A short version of the Argon2 part of `make bench` (bench/run.py, whose
Server, wrk and http helpers it reuses): one release server on a fresh SQLite
file with one user, then

  login     POST /api/v1/auth/login, right password, 8 connections
  register  POST /api/v1/users, 8 connections
  flood     POST /api/v1/auth/login, wrong password, 256 connections

each for BENCH_SECONDS (default 15), one after the other on the same server
as `make bench` does. For each: requests per second, the peak resident memory
(VmHWM after resetting it through /proc/PID/clear_refs, as bench/run.py does)
and the largest VmRSS sampled every 50 ms; also the resident memory one
second after startup and after the one sign-up that creates the user.

Usage: python3 bench/argon2_rss.py BINARY [NAME=VALUE ...]
The NAME=VALUE pairs are added to the server's environment (for example
MALLOC_ARENA_MAX=2). BENCH_SCENARIOS picks scenarios (default
login,register,flood); BENCH_FRESH=1 starts a new server for each one.
"""

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py)

SECONDS = int(os.environ.get("BENCH_SECONDS", "15"))
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "login,register,flood").split(",")
FRESH = os.environ.get("BENCH_FRESH") == "1"


def mib(n):
    return round(n / 2**20, 1)


def anonymous_mappings(pid):
    """Resident KiB of the anonymous mappings, largest first (heap, arenas, mmaps)."""
    maps = []
    current = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                name = parts[5] if len(parts) > 5 else ""
                current = {"size_kib": (end - start) // 1024, "name": name}
                maps.append(current)
            elif parts[0] == "Rss:" and current is not None:
                current["rss_kib"] = int(parts[1])
    anon = [m for m in maps if m["name"] in ("", "[heap]") and m.get("rss_kib", 0) > 1024]
    return sorted(anon, key=lambda m: -m["rss_kib"])


def scenario(server, name):
    user_body = {"email": run.USER, "password": run.PASSWORD}
    if name == "login":
        args = dict(url=f"{server.base}/api/v1/auth/login", script="post.lua", connections=8,
                    env={"BENCH_BODY": json.dumps(user_body)})
    elif name == "register":
        args = dict(url=f"{server.base}/api/v1/users", script="post.lua", connections=8,
                    env={"BENCH_BODY": json.dumps({"email": "signup-{n}@example.net",
                                                   "password": run.PASSWORD})})
    elif name == "flood":
        args = dict(url=f"{server.base}/api/v1/auth/login", script="post.lua", connections=256,
                    timeout="30s",
                    env={"BENCH_BODY": json.dumps({"email": run.USER, "password": "wrong " + run.PASSWORD})})
    else:
        raise SystemExit(f"unknown scenario {name}")
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(server.rss())
            time.sleep(0.05)

    before = server.rss()
    server.reset_peak()
    sampler = threading.Thread(target=sample)
    sampler.start()
    result = run.wrk(seconds=SECONDS, **args)
    stop.set()
    sampler.join()
    peak = server.peak()
    time.sleep(1)
    return {
        "rps": result["rps"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "statuses": result["statuses"],
        "errors": sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")),
        "rss_before_mib": mib(before),
        "peak_rss_mib": mib(peak),
        "max_sampled_rss_mib": mib(max(samples)),
        "rss_after_mib": mib(server.rss()),
        "anon_mappings_after": [f"{m['size_kib'] // 1024}M:{m['rss_kib'] // 1024}M" for m in
                                anonymous_mappings(server.proc.pid)[:12]],
    }


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    run.BIN = Path(sys.argv[1]).resolve()
    extra = dict(pair.split("=", 1) for pair in sys.argv[2:])
    # Plain `cargo build` binaries do not carry the name cargo-leptos bakes in.
    extra.setdefault("LEPTOS_OUTPUT_NAME", "leptos-auth")
    workdir = Path(tempfile.mkdtemp(prefix="leptos-auth-argon2-rss-"))
    db = run.Sqlite(workdir)
    report = {"binary": str(run.BIN), "env": {k: v for k, v in extra.items() if k != "LEPTOS_OUTPUT_NAME"},
              "seconds": SECONDS, "scenarios": {}}
    server = None
    try:
        # As in bench/run.py: the first start migrates and creates the admin
        # (one hash); the measured start is the second.
        run.Server(db.url, workdir, extra).stop()
        server = run.Server(db.url, workdir, extra)
        time.sleep(1)
        report["startup_rss_mib"] = mib(server.rss())
        status, _ = run.http("POST", f"{server.base}/api/v1/users",
                             {"email": run.USER, "password": run.PASSWORD})
        assert status == 201, status
        time.sleep(1)
        # After one sign-up: one hash done.
        report["idle_rss_mib"] = mib(server.rss())
        for i, name in enumerate(SCENARIOS):
            if FRESH and i > 0:
                server.stop()
                server = run.Server(db.url, workdir, extra)
                time.sleep(1)
            run.say(f"{name} ({SECONDS} s)")
            report["scenarios"][name] = scenario(server, name)
            print(name, json.dumps(report["scenarios"][name]), file=sys.stderr, flush=True)
    finally:
        if server:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
