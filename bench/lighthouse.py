#!/usr/bin/env python3
"""The browser part of `make bench`: Lighthouse on five pages and a repeat-visit check.

Starts the release server (`--bin`, with `--site-dir` as its site root) on a
fresh SQLite file, like bench/run.py, with the bench admin (ADMIN_EMAIL /
ADMIN_PASSWORD) and one regular user created through the API. Then:

1. Lighthouse (npm lighthouse@12.2.3, its defaults: mobile, simulated slow 4G,
   4x CPU slowdown) on `/`, `/login`, `/register`, `/profile` (signed in as the
   user) and `/admin/users` (signed in as the admin). The session cookies come
   from signing in through the pages' server function (`POST /fn/login`, with
   a same-origin `Origin` for the CSRF guard); they are HttpOnly, so they are
   read from `Set-Cookie` and handed to Lighthouse with `--extra-headers`
   (a fresh sign-in before each signed-in page). Each page is run
   BENCH_LIGHTHOUSE_RUNS times (default 3) and the median run is kept, chosen
   the way Lighthouse's own `computeMedianRun` does (nearest to the median FCP
   and TTI). Per page: the four category scores, LCP, TBT, total bytes
   transferred, the wasm + js bytes transferred (network-requests audit), and
   every audit below Lighthouse's pass mark (0.9) with its details.
2. A repeat visit in the system Chromium (bench/repeat-visit.mjs, Playwright):
   `/` cold, `/` again, then `/login`, in one context; the bytes of assets
   downloaded again on the repeat visits (an answer from Chromium's disk or
   memory cache downloads nothing; a revalidation answered 304 downloads no
   body and is counted as no download, but listed).

Installs nothing itself: scripts/bench-browser-tools.sh does (Lighthouse into
the tools folder, Playwright into end2end/node_modules, no browser download);
this script runs it when Lighthouse or Playwright is missing.

Usage (alone, e.g. against another build):
  python3 bench/lighthouse.py --bin dist/leptos-auth --site-dir dist/site
  make bench-browser [BIN=...] [SITE=...]
Options: --runs N, --pages /,/login (a subset), --json OUT (default
bench/results/browser.json), --reports DIR (default bench/results/lighthouse:
the HTML and JSON report of each page's median run), --record (also put the
result into bench/results/latest.json and regenerate BENCHMARKS.md).
bench/run.py calls measure() and records the result under "browser".
"""

import argparse
import datetime
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from common import ADMIN, DATA_ENCRYPTION_KEY, JWT_SECRET, PASSWORD, USER, free_port, say, stop_process

ROOT = Path(__file__).resolve().parent.parent
LIGHTHOUSE_VERSION = "12.2.3"
TOOLS_DIR = Path(os.environ.get("LEPTOS_AUTH_TOOLS_DIR", Path.home() / ".cache" / "leptos-auth" / "tools"))
LIGHTHOUSE = TOOLS_DIR / f"lighthouse-{LIGHTHOUSE_VERSION}" / "node_modules" / ".bin" / "lighthouse"
PLAYWRIGHT = ROOT / "end2end" / "node_modules" / "playwright-core"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-quic"
RUNS = int(os.environ.get("BENCH_LIGHTHOUSE_RUNS", "3"))
CATEGORIES = ["performance", "accessibility", "best-practices", "seo"]
# The goals: a score of at least this much, out of 100.
SCORE_GOALS = {"performance": 95, "accessibility": 100, "best-practices": 100, "seo": 100}
# wasm + js transferred on a cold visit (brotli), in bytes.
WASM_JS_BUDGET = 150 * 1024
# (path, who is signed in)
PAGES = [("/", None), ("/login", None), ("/register", None), ("/profile", "user"), ("/admin/users", "admin")]
REPEAT_VISIT = ["/", "/login"]
# Lighthouse's "passed" mark (its report shows audits below it as failing).
PASS_MARK = 0.9





def ensure_tools():
    if LIGHTHOUSE.exists() and PLAYWRIGHT.exists() and Path(CHROMIUM).exists():
        return
    subprocess.run([str(ROOT / "scripts" / "bench-browser-tools.sh")], check=True)


class Server:
    """The release binary on a fresh SQLite file in a temp folder, with the bench admin."""

    def __init__(self, binary, site_dir):
        self.workdir = Path(tempfile.mkdtemp(prefix="leptos-auth-bench-browser-"))
        self.port = free_port()
        # Opened as localhost, like a person would (passkeys need a host name).
        self.base = f"http://localhost:{self.port}"
        env = {
            "PATH": os.environ["PATH"],
            "APP_ENV": "production",
            "DATABASE_URL": f"sqlite://{self.workdir / 'bench.db'}",
            "DATA_DIR": str(self.workdir),
            "JWT_SECRET": JWT_SECRET,
            "DATA_ENCRYPTION_KEY": DATA_ENCRYPTION_KEY,
            "LEPTOS_SITE_ADDR": f"127.0.0.1:{self.port}",
            "LEPTOS_SITE_ROOT": str(Path(site_dir).resolve()),
            "PUBLIC_URL": self.base,
            "ADMIN_EMAIL": ADMIN,
            "ADMIN_PASSWORD": PASSWORD,
            "RUST_LOG": "warn",
            # Every sign-in comes from 127.0.0.1.
            "LOGIN_IP_MAX_FAILURES_PER_HOUR": "0",
            "REGISTRATION_MAX_PER_IP_PER_HOUR": "0",
        }
        self.log = open(self.workdir / "server.log", "w")
        self.proc = subprocess.Popen([str(Path(binary).resolve()), "serve"], cwd=self.workdir, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                tail = (self.workdir / "server.log").read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"the server did not become ready:\n{tail}")
            time.sleep(0.05)

    def stop(self):
        stop_process(self.proc)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def create_user(base, email, password):
    request = urllib.request.Request(f"{base}/api/v1/users", method="POST",
                                     data=json.dumps({"email": email, "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 201, r.status


def sign_in(base, email, password, next_path="/profile"):
    """Signs in through the sign-in page's server function and returns the
    `Cookie` header value of the session (the cookies are HttpOnly: read from
    Set-Cookie, not from a page)."""
    host = urllib.parse.urlsplit(base)
    body = urllib.parse.urlencode({"email": email, "password": password, "next": next_path})
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    try:
        conn.request("POST", "/fn/login", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            # The CSRF guard (src/web/csrf.rs) wants this site as the origin.
            "Origin": base,
        })
        response = conn.getresponse()
        response.read()
        cookies = [h.split(";", 1)[0].strip() for h in response.headers.get_all("Set-Cookie") or []]
    finally:
        conn.close()
    if response.status >= 400 or not cookies:
        raise RuntimeError(f"sign-in as {email} failed: HTTP {response.status}, {len(cookies)} cookies")
    return "; ".join(cookies)


def median_run(runs):
    """Lighthouse's computeMedianRun (core/lib/median-run.js): the run nearest
    to the median FCP and the median TTI, ties to the lower TTI."""
    def value(run, audit):
        return run["audits"][audit].get("numericValue") or 0
    fcp = statistics.median(value(r, "first-contentful-paint") for r in runs)
    tti = statistics.median(value(r, "interactive") for r in runs)
    return min(runs, key=lambda r: ((fcp - value(r, "first-contentful-paint")) ** 2
                                    + (tti - value(r, "interactive")) ** 2, value(r, "interactive")))


def run_lighthouse(url, cookie, out_base):
    cmd = [str(LIGHTHOUSE), url, "--quiet", "--output=json", "--output=html", f"--output-path={out_base}",
           f"--only-categories={','.join(CATEGORIES)}", f"--chrome-flags={CHROME_FLAGS}"]
    if cookie:
        cmd.append("--extra-headers=" + json.dumps({"Cookie": cookie}))
    env = dict(os.environ, CHROME_PATH=CHROMIUM)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    report = Path(f"{out_base}.report.json")
    if proc.returncode != 0 or not report.exists():
        raise RuntimeError(f"lighthouse failed on {url} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    lhr = json.loads(report.read_text())
    if lhr.get("runtimeError"):
        raise RuntimeError(f"lighthouse on {url}: {lhr['runtimeError']}")
    return lhr


def document_status(lhr):
    """The HTTP status of the page itself (its first Document request)."""
    items = (lhr["audits"].get("network-requests", {}).get("details") or {}).get("items") or []
    return next((i.get("statusCode") for i in items if i.get("resourceType") == "Document"), None)


def is_wasm_or_js(item):
    path = urllib.parse.urlsplit(item.get("url", "")).path
    mime = (item.get("mimeType") or "").lower()
    return (path.endswith((".wasm", ".js", ".mjs")) or mime == "application/wasm" or "javascript" in mime
            or item.get("resourceType") == "Script")


def item_summary(item):
    """One line for a row of an audit's details table."""
    parts = []
    node = item.get("node") if isinstance(item.get("node"), dict) else None
    if node:
        parts.append(node.get("snippet") or node.get("selector") or node.get("nodeLabel") or "")
        if node.get("explanation"):
            parts.append(node["explanation"].replace("\n", " "))
    for key in ("url", "source", "description", "label", "directive", "explanation", "message", "line"):
        value = item.get(key)
        if isinstance(value, dict):
            value = value.get("url") or value.get("value") or value.get("text") or value.get("snippet")
            if value is None:
                continue
        if value not in (None, ""):
            parts.append(f"{key}: {value}" if key in ("directive", "line", "message") else str(value))
    if item.get("scriptUrl"):
        parts.append(item["scriptUrl"])
    if item.get("groupLabel"):
        parts.append(f"{item['groupLabel']}: {item.get('duration', 0):.0f} ms")
    sub = (item.get("subItems") or {}).get("items") or []
    parts += [s.get("error") or s.get("signal") or "" for s in sub[:2] if isinstance(s, dict)]
    for key in ("wastedBytes", "totalBytes", "cacheLifetimeMs"):
        if key in item:
            parts.append(f"{key}={item[key]:.0f}" if isinstance(item[key], (int, float)) else f"{key}={item[key]}")
    text = " | ".join(p for p in parts if p)
    return text if len(text) <= 300 else text[:297] + "..."


def failing_audits(lhr):
    """Every audit of the four categories below Lighthouse's pass mark, with
    the categories and weights it counts for and its first details rows."""
    refs = audit_weights(lhr)
    out = []
    for audit_id, where in refs.items():
        audit = lhr["audits"][audit_id]
        if audit.get("score") is None or audit["scoreDisplayMode"] in ("notApplicable", "manual", "informative"):
            continue
        if audit["score"] >= PASS_MARK:
            continue
        details = audit.get("details") or {}
        items = details.get("items") or []
        out.append({
            "id": audit_id,
            "title": audit["title"],
            "score": audit["score"],
            "display_value": audit.get("displayValue"),
            "explanation": audit.get("explanation"),
            "categories": where,
            "scored": any(w["weight"] > 0 for w in where),
            "items": len(items),
            "details": [item_summary(i) for i in items[:5] if isinstance(i, dict)],
        })
    out.sort(key=lambda a: (not a["scored"], a["categories"][0]["category"], a["id"]))
    return out


def audit_weights(lhr):
    refs = {}
    for cid in CATEGORIES:
        for ref in lhr["categories"].get(cid, {}).get("auditRefs", []):
            refs.setdefault(ref["id"], []).append({"category": cid, "weight": ref["weight"]})
    return refs


def errored_audits(lhr):
    """Audits Lighthouse could not compute (Lighthouse 12.2.3's trace gatherers
    do not all understand Chromium 156's traces); one of weight 0 changes no
    score, one with a weight counts as 0."""
    refs = audit_weights(lhr)
    return [{"id": k, "weights": refs.get(k, []), "error": (a.get("errorMessage") or "")[:200]}
            for k, a in sorted(lhr["audits"].items()) if a.get("scoreDisplayMode") == "error"]


def summarize(lhr, runs):
    audits = lhr["audits"]
    items = (audits.get("network-requests", {}).get("details") or {}).get("items") or []
    assets = [i for i in items if is_wasm_or_js(i)]
    return {
        "url": lhr["finalDisplayedUrl"],
        "scores": {c: round(lhr["categories"][c]["score"] * 100) for c in CATEGORIES},
        "lcp_ms": round(audits["largest-contentful-paint"]["numericValue"]),
        "tbt_ms": round(audits["total-blocking-time"]["numericValue"]),
        "fcp_ms": round(audits["first-contentful-paint"]["numericValue"]),
        "speed_index_ms": round(audits["speed-index"]["numericValue"]),
        "cls": round(audits["cumulative-layout-shift"]["numericValue"], 3),
        "bytes_transferred": round(audits["total-byte-weight"]["numericValue"]),
        "wasm_js_transferred": sum(i.get("transferSize", 0) for i in assets),
        "wasm_js_files": [{"path": urllib.parse.urlsplit(i["url"]).path, "transferred": i.get("transferSize", 0),
                           "size": i.get("resourceSize", 0)} for i in assets],
        "requests": len(items),
        "benchmark_index": (lhr.get("environment") or {}).get("benchmarkIndex"),
        "runs": runs,
        "run_scores": [],
        "failing_audits": failing_audits(lhr),
        # Audits Lighthouse could not compute (e.g. gatherers that do not
        # understand this Chromium's trace); an audit of weight 0 changes no score.
        "errored_audits": errored_audits(lhr),
        "run_warnings": lhr.get("runWarnings") or [],
    }


def is_asset(path):
    """Static files, not pages or server functions: what a repeat visit must not fetch again."""
    path = path.split("?", 1)[0]
    return path.startswith("/pkg/") or (not path.startswith(("/fn/", "/api/")) and "." in path.rsplit("/", 1)[-1])


def repeat_visit(base):
    proc = subprocess.run(["node", str(ROOT / "bench" / "repeat-visit.mjs"), base, *REPEAT_VISIT],
                          capture_output=True, text=True, env=dict(os.environ, CHROMIUM_PATH=CHROMIUM))
    if proc.returncode != 0:
        raise RuntimeError(f"repeat-visit check failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout)
    cold = data["visits"][0]
    repeats = data["visits"][1:]
    downloaded, revalidated, from_cache, others, first_seen = [], [], [], [], []
    # An asset a later page is the first to use (/passkeys.js on /login) is
    # a first download, not a download again.
    seen = {r["path"] for r in cold["requests"]}
    for v in repeats:
        for r in v["requests"]:
            row = dict(r, visit=v["path"])
            if not is_asset(r["path"]):
                others.append(row)
            elif r["path"] not in seen:
                first_seen.append(row)
            elif r["status"] == 304:
                revalidated.append(row)
            elif r["cache"]:
                from_cache.append(row)
            else:
                downloaded.append(row)
        seen.update(r["path"] for r in v["requests"])
    cold_assets = [r for r in cold["requests"] if is_asset(r["path"])]
    wasm_js = [r for r in cold_assets if r["path"].split("?")[0].endswith((".wasm", ".js", ".mjs"))]
    return {
        "chromium": data["chromium"],
        "visits": [f"{v['path']} ({v['phase']})" for v in data["visits"]],
        "cold_assets": cold_assets,
        "cold_wasm_js_transferred": sum(r["transferred"] for r in wasm_js),
        "cold_wasm_js_encodings": sorted({r["encoding"] or "identity" for r in wasm_js}),
        "repeat_assets_downloaded": downloaded,
        "repeat_bytes_downloaded": sum(r["transferred"] for r in downloaded),
        "repeat_pkg_bytes_downloaded": sum(r["transferred"] for r in downloaded if r["path"].startswith("/pkg/")),
        "repeat_revalidated_304": revalidated,
        "repeat_from_cache": len(from_cache),
        "first_seen_on_later_pages": [{k: r[k] for k in ("visit", "path", "transferred")} for r in first_seen],
        "repeat_other_requests": [{k: r[k] for k in ("visit", "path", "status", "transferred")} for r in others],
        # Without Cache-Control, Chromium caches by heuristic freshness (a tenth of
        # the time since Last-Modified), then revalidates.
        "assets_without_cache_control": sorted(r["path"] for r in cold_assets if not r["cache_control"]),
        "asset_cache_control": sorted({f"{r['path']}: {r['cache_control'] or '(none)'}" for r in cold_assets}),
    }


def measure(binary, site_dir, runs=RUNS, pages=None, reports_dir=None):
    """Everything above, as the dict bench/run.py records under "browser"."""
    ensure_tools()
    started = time.monotonic()
    lighthouse_version = subprocess.run([str(LIGHTHOUSE), "--version"], capture_output=True,
                                        text=True).stdout.strip()
    server = Server(binary, site_dir)
    tmp = Path(tempfile.mkdtemp(prefix="leptos-auth-lighthouse-"))
    result = {
        "lighthouse": lighthouse_version,
        "settings": "Lighthouse defaults: mobile (Moto G Power), simulated throttling (150 ms RTT, "
                    "1.6 Mbit/s down, 4x CPU slowdown); median of "
                    f"{runs} run{'s' if runs != 1 else ''} per page",
        "runs_per_page": runs,
        "goals": {"scores": SCORE_GOALS, "wasm_js_cold_bytes": WASM_JS_BUDGET},
        "load_average_before": round(os.getloadavg()[0], 2),
        "pages": {},
    }
    try:
        create_user(server.base, USER, PASSWORD)
        for path, who in PAGES:
            if pages and path not in pages:
                continue
            lhrs = []
            for n in range(runs):
                cookie = None
                if who:
                    cookie = sign_in(server.base, ADMIN if who == "admin" else USER, PASSWORD, path)
                say(f"lighthouse {path}{' (signed in as ' + who + ')' if who else ''}, run {n + 1}/{runs}")
                slug = path.strip("/").replace("/", "-") or "home"
                lhrs.append(run_lighthouse(server.base + path, cookie, tmp / f"{slug}-{n}"))
                final = urllib.parse.urlsplit(lhrs[-1]["finalDisplayedUrl"]).path
                status = document_status(lhrs[-1])
                if final != path or status != 200:
                    raise RuntimeError(f"lighthouse on {path} ended on {final} with HTTP {status} "
                                       "(a signed-in page answers 401 without its session)")
            best = median_run(lhrs)
            summary = summarize(best, runs)
            summary["run_scores"] = [{c: round(r["categories"][c]["score"] * 100) for c in CATEGORIES}
                                     for r in lhrs]
            summary["signed_in_as"] = who
            result["pages"][path] = summary
            if reports_dir:
                Path(reports_dir).mkdir(parents=True, exist_ok=True)
                n = lhrs.index(best)
                for ext in ("json", "html"):
                    shutil.copy(tmp / f"{slug}-{n}.report.{ext}", Path(reports_dir) / f"{slug}.report.{ext}")
        say("repeat visit in Chromium: " + " -> ".join([REPEAT_VISIT[0]] + REPEAT_VISIT))
        result["repeat_visit"] = repeat_visit(server.base)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def site_brotli(site_dir):
    """The .br files of the wasm and js in the site's pkg folder (written by
    `cargo leptos build --release --precompress`), as scripts/check-asset-budget.sh counts them."""
    pkg = Path(site_dir) / "pkg"
    files = sorted(f for f in pkg.rglob("*") if f.name.endswith((".wasm.br", ".js.br")))
    return {str(f.relative_to(pkg)): f.stat().st_size for f in files}


def print_summary(result):
    print(f"\nLighthouse {result['lighthouse']} ({result['settings']}), {result['seconds']} s in all\n")
    print("| Page | Perf | A11y | BP | SEO | LCP | TBT | Bytes | wasm+js |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path, p in result["pages"].items():
        s = p["scores"]
        print(f"| {path} | {s['performance']} | {s['accessibility']} | {s['best-practices']} | {s['seo']} | "
              f"{p['lcp_ms'] / 1000:.1f} s | {p['tbt_ms']} ms | {p['bytes_transferred'] / 1024:.0f} KiB | "
              f"{p['wasm_js_transferred'] / 1024:.0f} KiB |")
    for path, p in result["pages"].items():
        print(f"\n{path}: audits below {PASS_MARK}:")
        for a in p["failing_audits"]:
            cats = ", ".join(f"{w['category']} w{w['weight']:g}" for w in a["categories"])
            print(f"  - {a['id']} ({a['score']}; {cats}) {a['title']}"
                  f"{': ' + a['display_value'] if a.get('display_value') else ''}")
            for d in a["details"]:
                print(f"      {d}")
    rv = result.get("repeat_visit")
    if rv:
        print(f"\nRepeat visit ({', '.join(rv['visits'])}): {rv['repeat_bytes_downloaded']} bytes of assets "
              f"downloaded again ({len(rv['repeat_assets_downloaded'])} files), "
              f"{len(rv['repeat_revalidated_304'])} revalidated (304), {rv['repeat_from_cache']} from cache; "
              f"cold wasm+js {rv['cold_wasm_js_transferred']} bytes ({', '.join(rv['cold_wasm_js_encodings'])})")
        for line in rv["asset_cache_control"]:
            print(f"  Cache-Control {line}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=str(ROOT / "dist" / "leptos-auth"))
    parser.add_argument("--site-dir", default=None, help="default: site/ beside --bin")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--pages", default=None, help="comma-separated subset, e.g. /,/login")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "browser.json"))
    parser.add_argument("--reports", default=str(ROOT / "bench" / "results" / "lighthouse"))
    parser.add_argument("--record", action="store_true",
                        help="also record into bench/results/latest.json and regenerate BENCHMARKS.md")
    args = parser.parse_args()
    site_dir = Path(args.site_dir) if args.site_dir else Path(args.bin).resolve().parent / "site"
    if not Path(args.bin).exists() or not (site_dir / "pkg").is_dir():
        sys.exit(f"{args.bin} or {site_dir}/pkg is missing: run `make dist`, or pass --bin and --site-dir")
    pages = args.pages.split(",") if args.pages else None
    result = measure(args.bin, site_dir, runs=args.runs, pages=pages, reports_dir=args.reports)
    result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result["site_brotli"] = site_brotli(site_dir)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print_summary(result)
    say(f"wrote {args.json} and the median reports in {args.reports}/")
    if args.record:
        latest = ROOT / "bench" / "results" / "latest.json"
        report = json.loads(latest.read_text())
        report["browser"] = result
        latest.write_text(json.dumps(report, indent=2) + "\n")
        subprocess.run([sys.executable, str(ROOT / "bench" / "report.py")], check=True)
        say("recorded into bench/results/latest.json and BENCHMARKS.md")


if __name__ == "__main__":
    main()
