import { ageAuthentication, enrol, nowStep, totp } from "./factors";
import { expect, OTHER_PASSWORD, PASSWORD, register, signIn, signOut, test, uniqueEmail } from "./helpers";

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
