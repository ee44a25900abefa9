// Repeat-visit check of the browser part of `make bench` (bench/lighthouse.py
// runs it): does a second visit download any asset again?
//
// Drives the system Chromium with playwright-core (end2end/node_modules, no
// browser download) and records every request through the DevTools protocol
// (Network domain): status, bytes on the wire (loadingFinished
// encodedDataLength: headers and body as received), whether Chromium answered
// it from its disk or memory cache, Content-Encoding and Cache-Control.
// Visits, in one browser context (one HTTP cache): the first page cold, the
// same page again, then the other pages.
//
// Usage: node bench/repeat-visit.mjs BASE_URL PATH [PATH...]   (prints JSON)
// Environment: CHROMIUM_PATH (default /usr/bin/chromium).
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "end2end", "package.json"));
const { chromium } = require("playwright-core");

const [base, first, ...others] = process.argv.slice(2);
if (!base || !first) {
  console.error("usage: node bench/repeat-visit.mjs BASE_URL PATH [PATH...]");
  process.exit(2);
}
const plan = [
  { path: first, phase: "cold" },
  { path: first, phase: "repeat" },
  ...others.map((p) => ({ path: p, phase: "repeat" })),
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");

  const requests = new Map();
  let visit = null;
  const entry = (id) => {
    if (!requests.has(id)) requests.set(id, { visit });
    return requests.get(id);
  };
  cdp.on("Network.requestWillBeSent", (e) => {
    // A redirect reuses the request id: keep the final hop.
    Object.assign(entry(e.requestId), { url: e.request.url, method: e.request.method, type: e.type });
  });
  cdp.on("Network.requestServedFromCache", (e) => {
    entry(e.requestId).cache = "memory";
  });
  cdp.on("Network.responseReceived", (e) => {
    const r = entry(e.requestId);
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    r.status = e.response.status;
    r.type = e.type;
    r.encoding = h["content-encoding"] ?? null;
    r.cache_control = h["cache-control"] ?? null;
    if (e.response.fromDiskCache) r.cache = "disk";
    if (e.response.fromServiceWorker) r.cache = "service worker";
    if (e.response.fromPrefetchCache) r.cache = "prefetch";
  });
  cdp.on("Network.loadingFinished", (e) => {
    entry(e.requestId).transferred = e.encodedDataLength;
  });
  cdp.on("Network.loadingFailed", (e) => {
    entry(e.requestId).failed = e.errorText;
  });

  const visits = [];
  for (const [i, step] of plan.entries()) {
    visit = i;
    const url = new URL(step.path, base).href;
    const response = await page.goto(url, { waitUntil: "load" });
    await page.waitForLoadState("networkidle");
    const hydration = await page
      .locator('[data-testid="hydration-status"]')
      .first()
      .textContent({ timeout: 2000 })
      .catch(() => null);
    visits.push({ ...step, url, status: response?.status() ?? null, hydration_badge: hydration, requests: [] });
  }
  for (const r of requests.values()) {
    if (r.visit === null || r.url === undefined) continue;
    const u = new URL(r.url);
    visits[r.visit].requests.push({
      path: u.origin === new URL(base).origin ? u.pathname + u.search : r.url,
      method: r.method,
      type: r.type ?? null,
      status: r.status ?? null,
      cache: r.cache ?? null,
      transferred: r.transferred ?? 0,
      encoding: r.encoding ?? null,
      cache_control: r.cache_control ?? null,
      ...(r.failed ? { failed: r.failed } : {}),
    });
  }
  console.log(JSON.stringify({ chromium: browser.version(), visits }));
} finally {
  await browser.close();
}
