import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { expect, OTHER_PASSWORD, PASSWORD, register, signIn, signOut, test, uniqueEmail } from "./helpers";
import type { Page } from "@playwright/test";

// Codes are computed here (RFC 6238: HMAC-SHA1 of the 30-second step, 6
// digits) with Node's own HMAC, from the key the setup page shows: not by
// the code under test.

function base32Decode(text: string): Buffer {
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

function totp(secret: Buffer, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const digest = createHmac("sha1", secret).update(counter).digest();
  const offset = digest[19] & 0x0f;
  const number = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(number % 1_000_000).padStart(6, "0");
}

const nowStep = () => Math.floor(Date.now() / 1000 / 30);

/** Makes every session's last authentication 11 minutes old (STEP_UP_MINUTES is 10). */
function ageAuthentication(email: string) {
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
async function enrol(page: Page): Promise<{ secret: Buffer; codes: string[]; step: number }> {
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

test("two-factor sign-in with an app code and with a recovery code", async ({ page, context }) => {
  const email = uniqueEmail("tfa");
  await register(page, email);
  const { secret, codes, step } = await enrol(page);
  await signOut(page);

  // The password, then the code; `next` survives the second step.
  await page.goto("/profile");
  await expect(page).toHaveURL(/\/login\?next=%2Fprofile/);
  await signIn(page, email, PASSWORD, page.url());
  await expect(page).toHaveURL(/\/login\/two-factor\?next=%2Fprofile/);
  const pending = (await context.cookies()).filter((c) => c.name.startsWith("__Host-leptos-auth-"));
  expect(pending.map((c) => c.name)).toEqual(["__Host-leptos-auth-mfa"]);
  expect(pending[0].httpOnly).toBe(true);
  expect(await page.content()).not.toContain(pending[0].value);
  // The code of the setup's step was used: refused, and the form stays.
  await page.getByLabel("Code from your authenticator app").fill(totp(secret, step));
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByText("That code is not right")).toBeVisible();
  await page.getByLabel("Code from your authenticator app").fill(totp(secret, step + 1));
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-email")).toHaveText(email);
  expect((await context.cookies()).map((c) => c.name).filter((n) => n.startsWith("__Host-")).sort()).toEqual([
    "__Host-leptos-auth-access",
    "__Host-leptos-auth-refresh",
  ]);
  await signOut(page);

  // A recovery code instead, typed in capitals.
  await signIn(page, email);
  await expect(page).toHaveURL(/\/login\/two-factor/);
  await page.getByTestId("switch-method").click();
  await expect(page).toHaveURL(/method=recovery/);
  await page.getByLabel("Recovery code").fill(codes[0].toUpperCase());
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("recovery-codes-left")).toHaveText("9 recovery codes left.");
  await signOut(page);

  // The same recovery code does not work twice.
  await signIn(page, email);
  await page.getByTestId("switch-method").click();
  await page.getByLabel("Recovery code").fill(codes[0]);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByText("That code is not right")).toBeVisible();
  await page.getByLabel("Recovery code").fill(codes[1]);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/profile$/);
});

test("a stale session confirms before changing the password or turning two-factor off", async ({ page }) => {
  const email = uniqueEmail("stepup");
  await register(page, email);
  const { codes } = await enrol(page);

  // Changing the password: the current password the form asks for confirms.
  ageAuthentication(email);
  await page.goto("/profile");
  await page.locator("#cp-current_password").fill(PASSWORD);
  await page.locator("#cp-password").fill(OTHER_PASSWORD);
  await page.locator("#cp-confirm").fill(OTHER_PASSWORD);
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(page.getByTestId("notice")).toContainText("Your password was changed");

  // Turning two-factor off asks for the password or a code inside the form.
  ageAuthentication(email);
  await page.goto("/profile");
  const section = page.getByTestId("two-factor");
  const confirm = section.locator("#off-confirm_secret");
  await expect(confirm).toBeVisible();
  await confirm.fill("not my password at all");
  await section.getByRole("button", { name: "Turn off two-factor authentication" }).click();
  await expect(page.getByText("That password (or code) is not right")).toBeVisible();
  await page.getByTestId("two-factor").locator("#off-confirm_secret").fill(codes[2]);
  await page.getByTestId("two-factor").getByRole("button", { name: "Turn off two-factor authentication" }).click();
  await expect(page.getByTestId("notice")).toContainText("Two-factor authentication is off");
  await expect(page.getByTestId("two-factor-status")).toHaveText("Off");
  // Just confirmed: the forms no longer ask.
  await expect(page.locator("#on-confirm_secret")).toHaveCount(0);

  // And signing in asks only for the (new) password again.
  await signOut(page);
  await signIn(page, email, OTHER_PASSWORD);
  await expect(page).toHaveURL(/\/profile$/);
});
