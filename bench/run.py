#!/usr/bin/env python3
"""make bench: the reproducible benchmark suite.

Starts the release artefact (dist/leptos-auth, built by `make dist`) on a
fresh SQLite file and then on a throwaway PostgreSQL cluster, seeds data,
drives load with wrk (beside the server, on the same machine), samples the
server's memory, and writes bench/results/latest.json and the tables in
BENCHMARKS.md.

Environment:
  BENCH_SECONDS       duration of each throughput run (default 10)
  BENCH_CONNECTIONS   connections of the throughput runs (default 64)
  BENCH_BACKENDS      comma-separated: sqlite,postgres (default both)
  BENCH_USERS         users seeded for the listing scenarios (default 100000)
  BENCH_SESSIONS_MAX  session rows for the scaling check (default 1000000)
  BENCH_SERVER_ENV    extra server environment for experiments, for example
                      "MALLOC_ARENA_MAX=2" (space-separated NAME=value pairs)
  BENCH_PASSKEY_SIGN_INS  passwordless sign-ins prepared for the passkey scenario (default 20000)
  BENCH_PASSKEY_SECONDS   its duration (default 3: the prepared sign-ins must last)
  BENCH_BROWSER       1 (default): first the browser part, bench/lighthouse.py
                      (Lighthouse on five pages, a repeat visit); 0: skip it
  BENCH_LIGHTHOUSE_RUNS  Lighthouse runs per page, the median kept (default 3)
"""

import base64
import concurrent.futures
import datetime
import gzip
import hashlib
import hmac
import json
import os
import platform
import re
import secrets
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import lighthouse

from common import ADMIN, DATA_ENCRYPTION_KEY, JWT_SECRET, PASSWORD, USER, free_port, say, stop_process

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
BIN = DIST / "leptos-auth"
LUA = ROOT / "bench" / "wrk"
RESULTS = ROOT / "bench" / "results"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
BACKENDS = os.environ.get("BENCH_BACKENDS", "sqlite,postgres").split(",")
USERS = int(os.environ.get("BENCH_USERS", "100000"))
SESSIONS_MAX = int(os.environ.get("BENCH_SESSIONS_MAX", "1000000"))
# Accounts with two-factor authentication for the POST /auth/mfa scenario:
# each request spends one account's TOTP step, so the run is short and the
# accounts many (more than it can sign in: see `statuses` of the result).
MFA_USERS = int(os.environ.get("BENCH_MFA_USERS", "20000"))
MFA_SECONDS = int(os.environ.get("BENCH_MFA_SECONDS", "3"))
# Passwordless sign-ins prepared for the POST /auth/passkey/finish scenario
# (each challenge is used once), and how long it runs.
PASSKEY_SIGN_INS = int(os.environ.get("BENCH_PASSKEY_SIGN_INS", "20000"))
PASSKEY_SECONDS = int(os.environ.get("BENCH_PASSKEY_SECONDS", "3"))
THREADS = 2
ADMIN_CONNECTIONS = 8
# Any valid Argon2id PHC string: seeded users never sign in.
SEED_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2VlZHNlZWRzZWVk$0jv2CkKAazNz3NSCtkj2qZ1qVT6gXtHo1O0qW8wXyqg"




def ts(dt):
    """The fixed-width text form SQLite rows use."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def http(method, url, body=None, token=None, form=False):
    data = None
    headers = {}
    if body is not None:
        if form:
            data = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in body.items()).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


class Postgres:
    """A throwaway cluster (the same way the tests start one)."""

    def __init__(self):
        initdb = shutil.which("initdb") or sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1]
        # /usr/local/bin/initdb may be a link into the server's bin folder,
        # which also holds pg_ctl and psql.
        self.bin = Path(initdb).resolve().parent
        self.dir = Path(tempfile.mkdtemp(prefix="leptos-auth-bench-pg-"))
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_pg:
            subprocess.run(["chown", "-R", "postgres", str(self.dir)], check=True)
        self.data = self.dir / "data"
        self.port = free_port()
        subprocess.run(self.as_pg + [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                                     "-U", "postgres", "--no-sync"], check=True, stdout=subprocess.DEVNULL)
        # A benchmark of the server, not of the disk: durability off like the tests.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                   "-c fsync=off -c synchronous_commit=off -c shared_buffers=256MB")
        subprocess.run(self.as_pg + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                                     str(self.dir / "server.log"), "-o", options, "-w", "start"],
                       check=True, stdout=subprocess.DEVNULL)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.version = self.sql("SHOW server_version").strip()

    def sql(self, statement):
        # On stdin: a batch of seeded rows is too long for a command line.
        return subprocess.run([str(self.bin / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                               self.url, "-f", "-"], input=statement,
                              check=True, capture_output=True, text=True).stdout

    def stop(self):
        subprocess.run(self.as_pg + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                     "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


class Sqlite:
    def __init__(self, folder):
        self.path = folder / "bench.db"
        self.url = f"sqlite://{self.path}"
        self.version = sqlite3.sqlite_version

    def sql(self, statement):
        with sqlite3.connect(self.path) as db:
            db.executescript(statement)


class Server:
    """dist/leptos-auth serve, with its memory readable from /proc."""

    def __init__(self, database_url, workdir, extra=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # Where browsers would open it (passkeys need a domain name).
        self.origin = f"http://localhost:{self.port}"
        env = {
            "PATH": os.environ["PATH"],
            "APP_ENV": "production",
            "DATABASE_URL": database_url,
            "JWT_SECRET": JWT_SECRET,
            "DATA_ENCRYPTION_KEY": DATA_ENCRYPTION_KEY,
            "LEPTOS_SITE_ADDR": f"127.0.0.1:{self.port}",
            "PUBLIC_URL": self.origin,
            "DATA_DIR": str(workdir),
            "ADMIN_EMAIL": ADMIN,
            "ADMIN_PASSWORD": PASSWORD,
            "RUST_LOG": "warn",
            # Limits off: the load generator is one client address.
            "LOGIN_MAX_FAILURES": "0",
            "LOGIN_IP_MAX_FAILURES_PER_HOUR": "0",
            "REGISTRATION_MAX_PER_IP_PER_HOUR": "0",
            "REFRESH_IP_MAX_FAILURES_PER_HOUR": "0",
            "EMAIL_REQUESTS_PER_IP_PER_HOUR": "0",
        }
        env.update(extra or {})
        env.update(pair.split("=", 1) for pair in os.environ.get("BENCH_SERVER_ENV", "").split())
        self.log = open(workdir / f"server-{self.port}.log", "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(BIN), "serve"], cwd=workdir, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.ready_after = self.wait_ready()

    def wait_ready(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - self.started
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: see {self.log.name}")
            time.sleep(0.002)
        raise RuntimeError("the server did not become ready")

    def status(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def rss(self):
        return self.status("VmRSS")

    def reset_peak(self):
        try:
            with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass

    def peak(self):
        return self.status("VmHWM")

    def stop(self):
        stop_process(self.proc)
        self.log.close()


def wrk(url, script, seconds=SECONDS, connections=CONNECTIONS, threads=THREADS, env=None, timeout="10s"):
    full_env = dict(os.environ, BENCH_LUA_DIR=str(LUA), BENCH_THREADS=str(threads))
    full_env.update(env or {})
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--timeout", timeout, "-s", str(LUA / script), url],
                         capture_output=True, text=True, env=full_env, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("JSON"))
    result = json.loads(line[4:])
    result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
    result["connections"] = connections
    result["threads"] = threads
    result["seconds"] = seconds
    for p in ("p50", "p95", "p99"):
        result[f"{p}_ms"] = round(result.pop(f"{p}_us") / 1000, 2)
    result["max_ms"] = round(result.pop("max_us") / 1000, 2)
    result["mean_ms"] = round(result.pop("mean_us") / 1000, 2)
    return result


def measured(server, run):
    """Runs a load and records the server's peak memory during it."""
    server.reset_peak()
    result = run()
    result["peak_rss_mib"] = round(server.peak() / 2**20, 1)
    return result


def login(server, email=ADMIN, password=PASSWORD):
    status, body = http("POST", f"{server.base}/api/v1/auth/login", {"email": email, "password": password})
    assert status == 200, (status, body)
    return body


def seed_users(db, backend, count):
    say(f"seeding {count} users")
    if backend == "postgres":
        db.sql("INSERT INTO users (email, password_hash, role, is_active, created_at, updated_at) "
               f"SELECT 'member' || g || '@example.org', '{SEED_HASH}', 'regular', g % 10 <> 0, now(), now() "
               f"FROM generate_series(1, {count}) g")
        db.sql("ANALYZE users")
    else:
        now = ts(datetime.datetime.now(datetime.timezone.utc))
        db.sql("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < "
               f"{count}) INSERT INTO users (email, password_hash, role, is_active, created_at, updated_at) "
               f"SELECT 'member' || n || '@example.org', '{SEED_HASH}', 'regular', n % 10 <> 0, '{now}', '{now}' "
               "FROM g; ANALYZE;")


def seed_sessions(db, backend, user_id, count, with_tokens=0, workdir=None):
    """`count` filler sessions of `user_id`, plus `with_tokens` whose refresh
    tokens are written to a file (one per line) for the refresh scenario."""
    now = datetime.datetime.now(datetime.timezone.utc)
    if count:
        say(f"seeding {count} session rows")
        if backend == "postgres":
            db.sql("INSERT INTO sessions (user_id, refresh_token_hash, created_at, last_used_at, expires_at, "
                   f"max_expires_at) SELECT {user_id}, 'filler-{count}-' || g, now(), now(), now() + interval '7 days', "
                   f"now() + interval '30 days' FROM generate_series(1, {count}) g")
            db.sql("ANALYZE sessions")
        else:
            exp, cap = ts(now + datetime.timedelta(days=7)), ts(now + datetime.timedelta(days=30))
            db.sql("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < "
                   f"{count}) INSERT INTO sessions (user_id, refresh_token_hash, created_at, last_used_at, "
                   f"expires_at, max_expires_at) SELECT {user_id}, 'filler-{count}-' || n, '{ts(now)}', '{ts(now)}', "
                   f"'{exp}', '{cap}' FROM g; ANALYZE;")
    if not with_tokens:
        return None
    tokens = [base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode() for _ in range(with_tokens)]
    rows = []
    exp, cap = now + datetime.timedelta(days=7), now + datetime.timedelta(days=30)
    for t in tokens:
        h = hashlib.sha256(t.encode()).hexdigest()
        if backend == "postgres":
            rows.append(f"({user_id}, '{h}', now(), now(), now() + interval '7 days', now() + interval '30 days')")
        else:
            rows.append(f"({user_id}, '{h}', '{ts(now)}', '{ts(now)}', '{ts(exp)}', '{ts(cap)}')")
    for i in range(0, len(rows), 5000):
        db.sql("INSERT INTO sessions (user_id, refresh_token_hash, created_at, last_used_at, expires_at, "
               "max_expires_at) VALUES " + ",".join(rows[i:i + 5000]) + ";")
    path = workdir / "refresh-tokens.txt"
    path.write_text("\n".join(tokens) + "\n")
    return path


def totp(secret, step):
    """RFC 6238: HMAC-SHA1 of the step, 6 digits."""
    digest = hmac.new(secret, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[19] & 0x0F
    number = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def seed_second_factor(db, backend, server, count, workdir):
    """`count` accounts with two-factor authentication on, each with a pending
    sign-in: the pairs file holds one "mfa_token code" line per account (its
    current TOTP code). The accounts and their sessions are seeded rows (no
    Argon2); the secrets are set up through the API, so the server seals
    them with its own key."""
    say(f"seeding {count} accounts with two-factor authentication")
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = "now()" if backend == "postgres" else f"'{ts(now)}'"
    later = ("now() + interval '1 hour'" if backend == "postgres"
             else f"'{ts(now + datetime.timedelta(hours=1))}'")
    emails = [f"mfa-{n}@example.org" for n in range(count)]
    refresh = [base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode() for _ in emails]
    for i in range(0, count, 5000):
        chunk = range(i, min(i + 5000, count))
        db.sql("INSERT INTO users (email, password_hash, role, is_active, created_at, updated_at) VALUES "
               + ",".join(f"('{emails[n]}', '{SEED_HASH}', 'regular', TRUE, {stamp}, {stamp})" for n in chunk)
               + ";")
        db.sql("WITH seeded (email, hash) AS (VALUES " + ",".join(
                   f"('{emails[n]}', '{hashlib.sha256(refresh[n].encode()).hexdigest()}')" for n in chunk)
               + ") INSERT INTO sessions (user_id, refresh_token_hash, created_at, last_used_at, authenticated_at, "
               f"expires_at, max_expires_at) SELECT users.id, seeded.hash, {stamp}, {stamp}, {stamp}, {later}, {later} "
               "FROM seeded JOIN users ON users.email = seeded.email;")

    def enrol(n):
        status, pair = http("POST", f"{server.base}/api/v1/auth/refresh", {"refresh_token": refresh[n]})
        assert status == 200, status
        access = pair["access_token"]
        status, started = http("POST", f"{server.base}/api/v1/users/me/mfa/totp", {}, token=access)
        assert status == 200, status
        secret = base64.b32decode(started["secret"] + "=" * (-len(started["secret"]) % 8))
        step = int(time.time()) // 30
        status, _ = http("POST", f"{server.base}/api/v1/users/me/mfa/totp/confirm",
                         {"code": totp(secret, step)}, token=access)
        assert status == 200, status
        return secret, step

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        enrolled = list(pool.map(enrol, range(count)))
    tokens = [base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode() for _ in emails]
    for i in range(0, count, 5000):
        chunk = range(i, min(i + 5000, count))
        db.sql("WITH seeded (email, hash) AS (VALUES " + ",".join(
                   f"('{emails[n]}', '{hashlib.sha256(tokens[n].encode()).hexdigest()}')" for n in chunk)
               + ") INSERT INTO mfa_challenges (token_hash, purpose, user_id, created_at, expires_at) "
               f"SELECT seeded.hash, 'sign_in', users.id, {stamp}, {later} FROM seeded "
               "JOIN users ON users.email = seeded.email;")
    # Codes of the current step (a later one than each setup's, which is
    # used up): valid for the next 30 to 60 seconds.
    step = int(time.time()) // 30
    path = workdir / "mfa-pairs.txt"
    path.write_text("".join(f"{tokens[n]} {totp(secret, max(step, enrolled_step + 1))}\n"
                            for n, (secret, enrolled_step) in enumerate(enrolled)))
    return path


def prepare_passkey_sign_ins(server, access, count, workdir):
    """A passkey for the bench user (added through the API), and `count`
    passwordless sign-ins ready to finish: one request body per line, each
    a challenge of POST /auth/passkey/start and its signed assertion."""
    import passkeys

    say(f"preparing {count} passkey sign-ins")
    device = passkeys.Passkey(server.origin)
    status, options = http("POST", f"{server.base}/api/v1/users/me/passkeys/register/start", {}, token=access)
    assert status == 200, status
    status, _ = http("POST", f"{server.base}/api/v1/users/me/passkeys/register/finish",
                     {"name": "Bench", "credential": device.register(options)}, token=access)
    assert status == 201, status

    def one(_):
        status, started = http("POST", f"{server.base}/api/v1/auth/passkey/start", {})
        assert status == 200, status
        return json.dumps({"challenge_id": started["challenge_id"],
                           "credential": device.assert_(started["options"])}, separators=(",", ":"))

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(one, range(count)))
    # One checked by hand first: the scenario must measure sign-ins, not refusals.
    status, pair = http("POST", f"{server.base}/api/v1/auth/passkey/finish", json.loads(bodies.pop()))
    assert status == 200 and pair["access_token"], status
    path = workdir / "passkey-bodies.txt"
    path.write_text("".join(body + "\n" for body in bodies))
    return path


def asset_sizes():
    pkg = DIST / "site" / "pkg"
    sizes = {}
    for f in sorted(pkg.iterdir()):
        if f.suffix in (".wasm", ".js", ".css"):
            raw = f.read_bytes()
            sizes[f.name] = {"raw": len(raw), "gzip": len(gzip.compress(raw, 9))}
            # Written by `cargo leptos build --release --precompress`.
            br = f.with_name(f.name + ".br")
            if br.exists():
                sizes[f.name]["br"] = br.stat().st_size
    return sizes


def bench_backend(backend):
    # The SQLite file lives in memory (tmpfs) when the machine has one, as
    # PostgreSQL runs without fsync: this measures the server, not the disk.
    # On this machine's disk, a checkpoint's fsync now and then holds up the
    # writes behind it (login p99 380 ms instead of 79 ms, BENCHMARKS.md).
    shm = Path("/dev/shm")
    memory = shm if backend == "sqlite" and shm.is_dir() and os.access(shm, os.W_OK) else None
    workdir = Path(tempfile.mkdtemp(prefix=f"leptos-auth-bench-{backend}-", dir=memory))
    pg = None
    results = {}
    try:
        if backend == "postgres":
            pg = Postgres()
            db = pg
        else:
            db = Sqlite(workdir)
        results["database_version"] = db.version
        results["database_folder"] = str(workdir.parent)
        # First start migrates and creates the admin; the measured start is the second.
        server = Server(db.url, workdir)
        server.stop()
        seed_users(db, backend, USERS)
        server = Server(db.url, workdir)
        results["startup_to_ready_ms"] = round(server.ready_after * 1000, 1)
        time.sleep(1)
        results["idle_rss_mib"] = round(server.rss() / 2**20, 1)
        try:
            admin = login(server)["access_token"]
            status, user = http("POST", f"{server.base}/api/v1/users", {"email": USER, "password": PASSWORD})
            assert status == 201, status
            user_token = login(server, USER)["access_token"]

            say(f"{backend}: GET /health")
            results["health"] = measured(server, lambda: wrk(f"{server.base}/health", "get.lua"))
            say(f"{backend}: GET /api/v1/users/me (1k session rows)")
            seed_sessions(db, backend, user["id"], 1000)
            results["users_me"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/users/me", "get.lua", env={"BENCH_TOKEN": user_token}))
            say(f"{backend}: GET /api/v1/users?limit=100")
            # Admin screens: a handful of admins, not 64 at once.
            results["users_list"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/users?limit=100", "get.lua", connections=ADMIN_CONNECTIONS,
                env={"BENCH_TOKEN": admin}))
            say(f"{backend}: GET /api/v1/users?q=member4242")
            results["users_search"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/users?q=member4242", "get.lua", connections=ADMIN_CONNECTIONS,
                env={"BENCH_TOKEN": admin}))
            say(f"{backend}: POST /api/v1/auth/refresh")
            pool = seed_sessions(db, backend, user["id"], 0, with_tokens=int(os.environ.get("BENCH_REFRESH_POOL", "100000")),
                                 workdir=workdir)
            results["refresh"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/auth/refresh", "refresh.lua", env={"BENCH_TOKENS": str(pool)}))
            say(f"{backend}: POST /api/v1/auth/mfa (a TOTP code per request)")
            pairs = seed_second_factor(db, backend, server, MFA_USERS, workdir)
            results["mfa"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/auth/mfa", "mfa.lua", seconds=MFA_SECONDS,
                env={"BENCH_PAIRS": str(pairs)}))
            say(f"{backend}: POST /api/v1/auth/passkey/finish (a passkey sign-in per request)")
            # A fresh sign-in: adding a passkey needs a recent authentication.
            fresh = login(server, USER)["access_token"]
            bodies = prepare_passkey_sign_ins(server, fresh, PASSKEY_SIGN_INS, workdir)
            results["passkey_sign_in"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/auth/passkey/finish", "passkey.lua", seconds=PASSKEY_SECONDS,
                env={"BENCH_BODIES": str(bodies)}))
            say(f"{backend}: GET /login (server-side rendered)")
            results["login_page"] = measured(server, lambda: wrk(f"{server.base}/login", "get.lua"))
            say(f"{backend}: POST /api/v1/auth/login (Argon2)")
            results["login"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/auth/login", "post.lua", connections=8,
                env={"BENCH_BODY": json.dumps({"email": USER, "password": PASSWORD})}))
            say(f"{backend}: POST /api/v1/users (Argon2)")
            results["register"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/users", "post.lua", connections=8,
                env={"BENCH_BODY": json.dumps({"email": "signup-{n}@example.net", "password": PASSWORD})}))
            say(f"{backend}: login flood, 256 connections for 20 s, /health probed beside it")
            probe = {}

            def health_probe():
                probe.update(wrk(f"{server.base}/health", "get.lua", seconds=20, connections=1, threads=1))

            prober = threading.Thread(target=health_probe)
            server.reset_peak()
            prober.start()
            flood = wrk(f"{server.base}/api/v1/auth/login", "post.lua", seconds=20, connections=256,
                        timeout="30s",
                        env={"BENCH_BODY": json.dumps({"email": USER, "password": "wrong " + PASSWORD})})
            prober.join()
            flood["peak_rss_mib"] = round(server.peak() / 2**20, 1)
            flood["health_probe"] = probe
            results["login_flood"] = flood
            # The growth with session rows compares two back-to-back runs of
            # one process (the first users/me run came before the listing,
            # Argon2 and flood scenarios changed its heap and caches).
            say(f"{backend}: GET /api/v1/users/me again, then with {SESSIONS_MAX} more session rows")
            results["users_me_before_many_sessions"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/users/me", "get.lua", env={"BENCH_TOKEN": user_token}))
            seed_sessions(db, backend, user["id"], SESSIONS_MAX)
            results["users_me_many_sessions"] = measured(server, lambda: wrk(
                f"{server.base}/api/v1/users/me", "get.lua", env={"BENCH_TOKEN": user_token}))
        finally:
            server.stop()
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def criterion_median_ms(name):
    """The median of one criterion micro-benchmark (`cargo bench`, which
    `make bench` runs first), in milliseconds."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    if not target.is_absolute():
        target = ROOT / target
    estimates = target / "criterion" / "argon2" / name / "new" / "estimates.json"
    if estimates.exists():
        data = json.loads(estimates.read_text())
        return round(data["median"]["point_estimate"] / 1e6, 2)
    return None


def micro_benchmarks():
    """Every criterion result of `cargo bench --bench micro`: median and its
    95% confidence interval, in microseconds."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    if not target.is_absolute():
        target = ROOT / target
    results = {}
    found = sorted((target / "criterion").glob("**/new/estimates.json"))
    # Criterion keeps the results of benchmarks that no longer exist: report
    # only those written by this run (within an hour of the newest).
    newest = max((f.stat().st_mtime for f in found), default=0)
    for estimates in found:
        if estimates.stat().st_mtime < newest - 3600:
            continue
        name = str(estimates.parent.parent.relative_to(target / "criterion"))
        try:
            median = json.loads(estimates.read_text())["median"]
            results[name] = {
                "median_us": round(median["point_estimate"] / 1000, 3),
                "ci95_us": [round(median["confidence_interval"]["lower_bound"] / 1000, 3),
                            round(median["confidence_interval"]["upper_bound"] / 1000, 3)],
            }
        except (OSError, KeyError, ValueError):
            continue
    return results


def versions():
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return None
    return {
        "leptos_auth_commit": out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "rustc": out(["rustc", "--version"]),
        "wrk": (out(["wrk", "--version"]) or "").split(" [")[0] or None,
        "sqlite": sqlite3.sqlite_version,
    }


def machine():
    with open("/proc/meminfo") as f:
        mem = int(next(l for l in f if l.startswith("MemTotal")).split()[1]) * 1024
    cpu = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = platform.platform()
    try:
        with open("/etc/os-release") as f:
            os_name = re.search(r'PRETTY_NAME="([^"]+)"', f.read()).group(1)
    except (OSError, AttributeError):
        pass
    return {"cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1), "cpu": cpu, "os": os_name,
            "kernel": platform.release()}


def main():
    if not BIN.exists():
        sys.exit("dist/leptos-auth is missing: run `make dist` (make bench does)")
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "versions": versions(),
        "parameters": {"seconds": SECONDS, "connections": CONNECTIONS, "wrk_threads": THREADS,
                       "users_seeded": USERS, "sessions_for_scaling": SESSIONS_MAX,
                       "argon2": "m=19456 KiB, t=2, p=1 (defaults), ARGON2_MAX_CONCURRENT = cores",
                       "database_max_connections": f"default (SQLite {2 * os.cpu_count()}, PostgreSQL 10)", "admin_connections": ADMIN_CONNECTIONS},
        "assets": asset_sizes(),
        "argon2id_single_hash_ms": criterion_median_ms("argon2id_hash_default"),
        # One hash per core at once: the time of the batch.
        "argon2id_one_per_core_ms": criterion_median_ms("argon2id_hash_default_one_per_core"),
        "micro": micro_benchmarks(),
        "backends": {},
    }
    if os.environ.get("BENCH_BROWSER", "1") != "0":
        say("browser delivery: Lighthouse and a repeat visit (bench/lighthouse.py)")
        report["browser"] = lighthouse.measure(BIN, DIST / "site", reports_dir=RESULTS / "lighthouse")
        report["browser"]["site_brotli"] = lighthouse.site_brotli(DIST / "site")
    for backend in BACKENDS:
        say(f"benchmarking on {backend}")
        report["backends"][backend] = bench_backend(backend)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    subprocess.run([sys.executable, str(ROOT / "bench" / "report.py")], check=True)
    say("wrote bench/results/latest.json and BENCHMARKS.md")


if __name__ == "__main__":
    main()
