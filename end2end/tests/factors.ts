// Two-factor helpers shared by the specs.
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import type { Page } from "@playwright/test";
import { expect } from "./helpers";

// Codes are computed here (RFC 6238: HMAC-SHA1 of the 30-second step, 6
// digits) with Node's own HMAC, from the key the setup page shows: not by
// the code under test.

export function base32Decode(text: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let count = 0;
  const out: number[] = [];
  for (const c of text.replace(/[\s=]/g, "").toUpperCase()) {
    const value = alphabet.indexOf(c);
    if (value < 0) throw new Error(`not base32: ${c}`);
    bits = (bits << 5) | value;
    count += 5;
    if (count >= 8) {
      count -= 8;
      out.push((bits >> count) & 0xff);
    }
  }
  return Buffer.from(out);
}

export function totp(secret: Buffer, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const digest = createHmac("sha1", secret).update(counter).digest();
  const offset = digest[19] & 0x0f;
  const number = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(number % 1_000_000).padStart(6, "0");
}

export const nowStep = () => Math.floor(Date.now() / 1000 / 30);

/** Makes every session's last authentication 11 minutes old (STEP_UP_MINUTES is 10). */
export function ageAuthentication(email: string) {
  const db = `${process.env.E2E_DATA_DIR ?? "/tmp/leptos-auth-e2e"}/e2e.db`;
  const script = [
    "import sqlite3, sys, datetime",
    "at = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=11)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')",
    "c = sqlite3.connect(sys.argv[1], timeout=10)",
    "c.execute('UPDATE sessions SET authenticated_at = ? WHERE user_id = (SELECT id FROM users WHERE email = ?)', (at, sys.argv[2]))",
    "c.commit()",
  ].join("\n");
  execFileSync("python3", ["-c", script, db, email]);
}

/** Turns two-factor authentication on from the profile; returns the secret and the recovery codes. */
export async function enrol(page: Page): Promise<{ secret: Buffer; codes: string[]; step: number }> {
  await page.goto("/profile");
  const section = page.getByTestId("two-factor");
  await expect(section.getByTestId("two-factor-status")).toHaveText("Off");
  await section.getByRole("button", { name: "Set up two-factor authentication" }).click();
  await expect(page).toHaveURL(/\/profile\/two-factor$/);
  await expect(page.getByTestId("totp-qr").locator("svg")).toBeVisible();
  const secret = base32Decode((await page.getByTestId("totp-secret").textContent()) ?? "");
  expect(secret.length).toBe(20);
  // A wrong code first: the setup stays, with the error by the field.
  await page.getByLabel("Code from the app").fill("000000");
  await page.getByRole("button", { name: "Turn on two-factor authentication" }).click();
  await expect(page.getByText("That code is not right")).toBeVisible();
  const step = nowStep();
  await page.getByLabel("Code from the app").fill(totp(secret, step));
  await page.getByRole("button", { name: "Turn on two-factor authentication" }).click();
  await expect(page).toHaveURL(/\/profile\/recovery-codes$/);
  const codes = await page.getByTestId("recovery-codes").locator("code").allTextContents();
  expect(codes).toHaveLength(10);
  for (const code of codes) expect(code).toMatch(/^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$/);
  // Shown once.
  await page.reload();
  await expect(page.getByText("were already shown")).toBeVisible();
  await page.goto("/profile");
  await expect(page.getByTestId("two-factor-status")).toHaveText("On");
  await expect(page.getByTestId("recovery-codes-left")).toHaveText("10 recovery codes left.");
  return { secret, codes, step };
}
