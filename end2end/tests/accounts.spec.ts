import { expect, OTHER_PASSWORD, PASSWORD, register, signIn, signOut, test, uniqueEmail } from "./helpers";

test("register, land on the profile, sign out, sign in again", async ({ page, context }) => {
  const email = uniqueEmail("flow");
  await register(page, email);
  await expect(page.getByTestId("notice")).toContainText("Welcome");
  await expect(page.getByTestId("nav-user")).toHaveText(email);

  // Tokens live only in HttpOnly cookies, never in the page.
  const cookies = await context.cookies();
  const session = cookies.filter((c) => c.name.startsWith("__Host-leptos-auth-"));
  expect(session.map((c) => c.name).sort()).toEqual(["__Host-leptos-auth-access", "__Host-leptos-auth-refresh"]);
  for (const cookie of session) {
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.secure).toBe(true);
    expect(cookie.sameSite).toBe("Lax");
    expect(cookie.path).toBe("/");
    expect(await page.content()).not.toContain(cookie.value);
  }
  expect(await page.evaluate(() => JSON.stringify(localStorage) + document.cookie)).toBe("{}");

  await signOut(page);
  expect((await context.cookies()).filter((c) => c.name.startsWith("__Host-"))).toEqual([]);
  await page.goto("/profile");
  await expect(page).toHaveURL(/\/login\?next=%2Fprofile/);

  await signIn(page, email, PASSWORD, page.url());
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-email")).toHaveText(email);
});

test("a wrong password shows the generic error", async ({ page }) => {
  const email = uniqueEmail("wrong");
  await register(page, email);
  await signOut(page);
  await signIn(page, email, "not the right password at all");
  await expect(page.getByRole("alert").filter({ hasText: "Incorrect email or password" })).toBeVisible();
  await signIn(page, uniqueEmail("nobody"), PASSWORD);
  await expect(page.getByRole("alert").filter({ hasText: "Incorrect email or password" })).toBeVisible();
  await expect(page).toHaveURL(/\/login/);
});

test("registration refuses an address that already has an account", async ({ page }) => {
  const email = uniqueEmail("taken");
  await register(page, email);
  await signOut(page);
  await page.goto("/register");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Confirm password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByText("An account with this email already exists")).toBeVisible();
  await expect(page).toHaveURL(/\/register/);
});

test("registration rates the password and checks the confirmation while typing @js", async ({ page }) => {
  const email = uniqueEmail("taken");
  await register(page, email);
  await signOut(page);
  await page.goto("/register");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill("password1234");
  await expect(page.getByTestId("strength")).toContainText("Weak");
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await expect(page.getByTestId("strength")).toContainText("accepted");
  await page.getByLabel("Confirm password").fill(PASSWORD + "x");
  await expect(page.getByText("The passwords do not match")).toBeVisible();
  await page.getByLabel("Confirm password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByText("An account with this email already exists")).toBeVisible();
});

test("after a password change the old password no longer works", async ({ page, browser }) => {
  const email = uniqueEmail("pwchange");
  await register(page, email);
  // A second device, signed in before the change.
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await signIn(otherPage, email);
  await expect(otherPage).toHaveURL(/\/profile/);

  await page.locator("#cp-current_password").fill(PASSWORD);
  await page.locator("#cp-password").fill(OTHER_PASSWORD);
  await page.locator("#cp-confirm").fill(OTHER_PASSWORD);
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(page.getByTestId("notice")).toContainText("other sessions were signed out");
  await expect(page.getByTestId("profile-email")).toHaveText(email);

  await otherPage.goto("/profile");
  await expect(otherPage).toHaveURL(/\/login/);
  await other.close();

  await signOut(page);
  await signIn(page, email, PASSWORD);
  await expect(page.getByRole("alert").filter({ hasText: "Incorrect email or password" })).toBeVisible();
  await signIn(page, email, OTHER_PASSWORD);
  await expect(page).toHaveURL(/\/profile/);
});

test("next= leads back to a page on this site and nowhere else", async ({ page }) => {
  const email = uniqueEmail("next");
  await register(page, email);
  await signOut(page);
  await signIn(page, email, PASSWORD, "/login?next=%2Fprofile%3Fx%3D1");
  await expect(page).toHaveURL(/\/profile\?x=1$/);
  await signOut(page);
  for (const evil of ["https://evil.example/", "//evil.example/", "/\\evil.example"]) {
    await signIn(page, email, PASSWORD, `/login?next=${encodeURIComponent(evil)}`);
    await expect(page).toHaveURL(/^http:\/\/localhost:\d+\/profile$/);
    await signOut(page);
  }
});

test("an account can be deleted with its password and a confirmation", async ({ page }) => {
  const email = uniqueEmail("delete");
  await register(page, email);
  await page.locator("#da-current_password").fill(PASSWORD);
  await page.getByRole("button", { name: "Delete my account" }).click();
  await expect(page.getByText("Tick the box to confirm")).toBeVisible();
  await page.locator("#da-current_password").fill(PASSWORD);
  await page.getByLabel("I understand that my account will be deleted for good").check();
  await page.getByRole("button", { name: "Delete my account" }).click();
  await expect(page.getByTestId("notice")).toContainText("Your account was deleted");
  await signIn(page, email);
  await expect(page.getByRole("alert").filter({ hasText: "Incorrect email or password" })).toBeVisible();
});

test.describe("without JavaScript", () => {
  test("register, sign out and sign in with plain form posts @no-js", async ({ page }) => {
    const email = uniqueEmail("nojs");
    await register(page, email);
    await expect(page.getByTestId("hydration-status")).toHaveCount(0);
    await signOut(page);
    await signIn(page, email, "wrong password entirely");
    await expect(page.getByRole("alert").filter({ hasText: "Incorrect email or password" })).toBeVisible();
    await signIn(page, email, PASSWORD, "/login?next=%2Fprofile");
    await expect(page).toHaveURL(/\/profile$/);
    await expect(page.getByTestId("profile-email")).toHaveText(email);
  });
});
