import * as fs from "node:fs";
import * as path from "node:path";
import { expect, OTHER_PASSWORD, PASSWORD, register, signIn, signOut, test, uniqueEmail } from "./helpers";

/** The development outbox of the server under test (no SMTP_URL: messages are .eml files). */
const OUTBOX = path.join(process.env.E2E_DATA_DIR ?? "/tmp/leptos-auth-e2e", "outbox");

/** Undoes quoted-printable soft line breaks and escapes. */
function decodeQuotedPrintable(text: string): string {
  return text.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/** The link to `linkPath` in the newest outbox message to `to` with this subject. */
function linkInOutbox(to: string, subject: string, linkPath: string): string | undefined {
  if (!fs.existsSync(OUTBOX)) return undefined;
  const files = fs.readdirSync(OUTBOX).filter((f) => f.endsWith(".eml")).sort().reverse();
  for (const file of files) {
    const message = fs.readFileSync(path.join(OUTBOX, file), "utf8");
    if (!message.includes(`To: ${to}`) || !message.includes(`Subject: ${subject}`)) continue;
    const body = message.includes("quoted-printable") ? decodeQuotedPrintable(message) : message;
    const link = body.match(new RegExp(`https?://[^\\s"<>]+${linkPath}\\?token=[A-Za-z0-9_-]+`));
    if (link) return link[0];
  }
  return undefined;
}

/** Waits for the message (sending is asynchronous) and returns its link. */
async function waitForLink(to: string, subject: string, linkPath: string): Promise<string> {
  let link: string | undefined;
  await expect
    .poll(() => (link = linkInOutbox(to, subject, linkPath)), { message: `a "${subject}" message to ${to} in ${OUTBOX}` })
    .toBeTruthy();
  return link!;
}

test("forgot password: the link from the outbox sets a new password that signs in", async ({ page }) => {
  const email = uniqueEmail("forgot");
  await register(page, email);
  await signOut(page);

  await page.goto("/login");
  await page.getByTestId("forgot-password").click();
  await expect(page).toHaveURL(/\/forgot-password$/);
  await page.getByLabel("Email").fill(email);
  await page.getByRole("button", { name: "Send the link" }).click();
  await expect(page.getByTestId("notice")).toContainText("If an account with this email exists");

  const link = await waitForLink(email, "Reset your password", "/reset-password");
  await page.goto(link);
  await page.getByLabel("New password", { exact: true }).fill(OTHER_PASSWORD);
  await page.getByLabel("Confirm new password").fill(OTHER_PASSWORD);
  await page.getByRole("button", { name: "Set the new password" }).click();
  await expect(page).toHaveURL(/\/login\?notice=password-reset/);
  await expect(page.getByTestId("notice")).toContainText("Your new password is set");

  // The old password is gone, the new one works, and the link is used up.
  await signIn(page, email, PASSWORD);
  await expect(page.getByRole("alert").filter({ hasText: "Incorrect email or password" })).toBeVisible();
  await signIn(page, email, OTHER_PASSWORD);
  await expect(page).toHaveURL(/\/profile/);
  await page.goto(link);
  await expect(page.getByTestId("link-problem")).toHaveText(/already been used/);
});

test("the verification link confirms the address shown on the profile", async ({ page }) => {
  const email = uniqueEmail("verify");
  await register(page, email);
  await expect(page.getByTestId("profile-email-verified")).toContainText("Not yet");

  // Ask for a newer link from the profile: the first one is replaced.
  const first = await waitForLink(email, "Confirm your email address", "/verify-email");
  await page.getByRole("button", { name: "Send me a new confirmation link" }).click();
  await expect(page.getByTestId("notice")).toContainText("A new confirmation link was sent");
  let second: string | undefined;
  await expect.poll(() => (second = linkInOutbox(email, "Confirm your email address", "/verify-email")) !== first).toBe(true);

  await page.goto(first);
  await expect(page.getByTestId("link-problem")).toHaveText(/replaced by a newer one/);
  await page.goto(second!);
  await expect(page.getByTestId("email-verified")).toContainText(`${email} is confirmed`);
  await page.goto("/profile");
  await expect(page.getByTestId("profile-email-verified")).toContainText("Yes");
});
