import { defineConfig } from "@playwright/test";

// The server under test: the binary built by `cargo leptos build`, on a fresh
// SQLite file in a temp folder (see run.sh), on its own port.
const port = Number(process.env.E2E_PORT ?? 3100);
// Pages are opened as localhost (PUBLIC_URL's default for a loopback
// address): WebAuthn refuses an IP address as the relying party.
const baseURL = `http://localhost:${port}`;

export default defineConfig({
  testDir: "./tests",
  timeout: 45_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: process.env.CI ? "line" : "list",
  // Every page works without JavaScript: each spec runs twice, with and
  // without scripts. A test that checks what only a script can do (a live
  // strength meter, a countdown, the Swagger UI) is tagged @js; one that
  // checks the page as served to a browser without scripts is tagged @no-js.
  projects: [
    { name: "javascript", grepInvert: /@no-js/ },
    { name: "no-javascript", grepInvert: /@js\b/, use: { javaScriptEnabled: false } },
  ],
  use: {
    baseURL,
    browserName: "chromium",
    launchOptions: {
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
    },
  },
  webServer: {
    command: process.env.E2E_SERVER_BIN ?? "../target/debug/leptos-auth",
    url: `http://127.0.0.1:${port}/health/ready`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "ignore",
    stderr: "pipe",
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: process.env.E2E_SITE_ROOT ?? "../target/site",
      DATA_DIR: process.env.E2E_DATA_DIR ?? "/tmp/leptos-auth-e2e",
      DATABASE_URL: `sqlite://${process.env.E2E_DATA_DIR ?? "/tmp/leptos-auth-e2e"}/e2e.db`,
      JWT_SECRET: "end-to-end-test-secret-end-to-end-test-secret",
      ARGON2_MEMORY_KIB: "19456",
      ACCESS_TOKEN_EXPIRE_MINUTES: "1",
      ADMIN_EMAIL: "operator@example.com",
      ADMIN_PASSWORD: "sturdy orchid pinnacle harbor",
      // The suite signs many accounts up from 127.0.0.1.
      REGISTRATION_MAX_PER_IP_PER_HOUR: "0",
      // Sign-in throttling stays real (these are the defaults, set here so a
      // stray .env or shell variable cannot change them): throttle.spec.ts
      // needs 5 failures per account; no other spec fails 5 times for one
      // account, and the whole suite stays far below 100 failures per hour.
      LOGIN_MAX_FAILURES: "5",
      LOGIN_WINDOW_MINUTES: "15",
      LOGIN_IP_MAX_FAILURES_PER_HOUR: "100",
      // No SMTP_URL: messages go to DATA_DIR/outbox, where recovery.spec.ts
      // reads them; its two mail requests stay within the defaults.
      EMAIL_REQUEST_INTERVAL_SECONDS: "60",
      EMAIL_REQUESTS_PER_IP_PER_HOUR: "20",
      RUST_LOG: "warn",
    },
  },
});
