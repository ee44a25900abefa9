import { Page } from "@playwright/test";
import { expect, PASSWORD, register, signIn, signInAsAdmin, signOut, test, uniqueEmail, userIdOf } from "./helpers";

// The e2e server keeps the default limits: 5 failed sign-ins per account in
// 15 minutes, then a first wait of 30 s. This is the only spec that fails
// 5 times for one account.
const WAIT = /Too many attempts, try again in (\d+) seconds/;

async function failFiveTimes(page: Page, email: string) {
  for (let attempt = 1; attempt <= 5; attempt++) {
    await signIn(page, email, `not the password, attempt ${attempt}`);
    await expect(page.getByRole("alert").filter({ hasText: "Incorrect email or password" })).toBeVisible();
  }
}

/** The wait the page announces (role=alert), in seconds. */
async function announcedWait(page: Page): Promise<number> {
  const alert = page.getByRole("alert").filter({ hasText: WAIT });
  await expect(alert).toBeVisible();
  const seconds = Number((await alert.textContent())!.match(WAIT)![1]);
  expect(seconds).toBeGreaterThanOrEqual(1);
  expect(seconds).toBeLessThanOrEqual(30);
  return seconds;
}

test("five wrong passwords make the sixth attempt wait, counted down on the button @js", async ({ page, browser }) => {
  test.setTimeout(120_000);
  const email = uniqueEmail("throttle");
  await register(page, email);
  await signOut(page);
  await failFiveTimes(page, email);

  // Even the right password is refused now, before it is checked.
  await signIn(page, email, PASSWORD);
  const seconds = await announcedWait(page);
  await expect(page).toHaveURL(/\/login/);
  const button = page.locator("form").getByRole("button", { name: /^Sign in/ });
  await expect(button).toBeDisabled();
  await expect(button).toHaveText(/^Sign in \(\d+ s\)$/);

  // When the wait is over the button comes back, and the right password works.
  await expect(page.getByTestId("throttle-over")).toBeVisible({ timeout: (seconds + 5) * 1000 });
  await expect(button).toBeEnabled();
  await expect(button).toHaveText("Sign in");
  await expect(page.getByRole("alert").filter({ hasText: WAIT })).toHaveCount(0);
  // The refused post came back as a fresh form: sign in on it.
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await button.click();
  await expect(page).toHaveURL(/\/profile/);

  // The user sees it in their security activity...
  const activity = page.getByTestId("activity-item");
  await expect(activity.first()).toContainText("Signed in");
  await expect(activity.filter({ hasText: /^Sign-in throttled for \d+ s/ })).toHaveCount(1);
  await expect(activity.filter({ hasText: "Failed sign-in: wrong password" })).toHaveCount(5);

  // ...and the admin in the audit log, filtered by type "Sign-in throttled".
  const admin = await browser.newContext();
  const adminPage = await admin.newPage();
  await signInAsAdmin(adminPage);
  const id = await userIdOf(adminPage, email);
  await adminPage.goto("/admin/audit");
  await adminPage.getByLabel("Event type").selectOption({ label: "Sign-in throttled" });
  await adminPage.getByRole("button", { name: "Filter" }).click();
  await expect(adminPage).toHaveURL(/event_type=login_throttled/);
  await expect(adminPage.getByLabel("Event type")).toHaveValue("login_throttled");
  const throttled = adminPage.getByTestId("audit-event").filter({
    has: adminPage.getByRole("link", { name: `User ${id}`, exact: true }),
  });
  await expect(throttled).toHaveCount(1);
  await expect(throttled).toContainText(/Sign-in throttled for \d+ s/);
  await expect(throttled).toContainText("127.0.0.1");
  for (const row of await adminPage.getByTestId("audit-event").all()) {
    await expect(row).toHaveAttribute("data-event-type", "login_throttled");
  }
  await admin.close();
});

test.describe("without JavaScript", () => {
  test("a throttled sign-in shows the wait after a plain form post @no-js", async ({ page }) => {
    const email = uniqueEmail("throttlenojs");
    await register(page, email);
    await signOut(page);
    await failFiveTimes(page, email);
    await signIn(page, email, PASSWORD);
    await announcedWait(page);
    await expect(page).toHaveURL(/\/login/);
    // No script: the button stays as rendered; the server refuses until the wait is over.
    await expect(page.getByRole("button", { name: "Sign in", exact: true })).toBeEnabled();
    await signIn(page, email, PASSWORD);
    await announcedWait(page);
  });
});
