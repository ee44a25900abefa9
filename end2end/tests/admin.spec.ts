import { ADMIN_EMAIL, ADMIN_PASSWORD, expect, register, signIn, test, uniqueEmail } from "./helpers";

test("a regular user gets 403 on the admin pages", async ({ page }) => {
  await register(page, uniqueEmail("regular"));
  await expect(page.getByRole("link", { name: "Admin" })).toHaveCount(0);
  const response = await page.goto("/admin/users");
  expect(response?.status()).toBe(403);
  await expect(page.getByTestId("forbidden")).toBeVisible();
});

test("anonymous visitors are sent to sign in first", async ({ page }) => {
  const response = await page.goto("/admin/users?q=abc");
  await expect(page).toHaveURL(/\/login\?next=%2Fadmin%2Fusers%3Fq%3Dabc$/);
  expect(response?.status()).toBe(200);
});

test("an admin deactivates a user, whose open session ends at the next navigation", async ({ page, browser }) => {
  const email = uniqueEmail("victim");
  const victim = await browser.newContext();
  const victimPage = await victim.newPage();
  await register(victimPage, email);

  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page).toHaveURL(/\/profile/);
  await page.getByRole("link", { name: "Admin" }).click();
  await expect(page).toHaveURL(/\/admin\/users/);
  await page.getByLabel("Search by email").fill(email.split("@")[0]);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.getByTestId("user-count")).toHaveText("1 user found");
  await page.getByRole("link", { name: email }).click();
  await expect(page.getByTestId("user-email")).toHaveText(email);
  await page.getByRole("button", { name: "Deactivate user" }).click();
  await expect(page.getByTestId("notice")).toContainText("deactivated");
  await expect(page.getByTestId("user-status")).toHaveText("Inactive");

  await victimPage.getByRole("link", { name: "Profile" }).click();
  await expect(victimPage).toHaveURL(/\/login/);
  await victimPage.goto("/profile");
  await expect(victimPage).toHaveURL(/\/login\?next=%2Fprofile/);
  await signIn(victimPage, email);
  await expect(victimPage.getByRole("alert").filter({ hasText: "Inactive user" })).toBeVisible();
  await victim.close();
});

test("the last active admin cannot be demoted, and the page says why", async ({ page }) => {
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page).toHaveURL(/\/profile/);
  await page.goto(`/admin/users?q=${encodeURIComponent(ADMIN_EMAIL)}`);
  await page.getByRole("link", { name: ADMIN_EMAIL }).click();
  await page.locator("#edit-role").selectOption("regular");
  await page.getByRole("button", { name: "Save changes" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "last active admin" })).toBeVisible();
});

test("an admin creates a user who can then sign in", async ({ page, browser }) => {
  const email = uniqueEmail("created");
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page).toHaveURL(/\/profile/);
  await page.goto("/admin/users");
  await page.locator("#new-email").fill(email);
  await page.locator("#new-password").fill("granite meadow lantern quartz");
  await page.locator("#new-role").selectOption("regular");
  await page.getByRole("button", { name: "Create user" }).click();
  await expect(page.getByTestId("user-email")).toHaveText(email);
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await signIn(otherPage, email, "granite meadow lantern quartz");
  await expect(otherPage).toHaveURL(/\/profile/);
  await other.close();
});

test("an admin sees a user's sessions and signs them out everywhere", async ({ page, browser }) => {
  const email = uniqueEmail("everywhere");
  const victim = await browser.newContext();
  const victimPage = await victim.newPage();
  await register(victimPage, email);

  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page).toHaveURL(/\/profile/);
  await page.goto(`/admin/users?q=${encodeURIComponent(email)}`);
  await page.getByRole("link", { name: email }).click();
  await expect(page.getByTestId("user-sessions").locator("li")).toHaveCount(1);
  await page.getByRole("button", { name: "Sign out everywhere" }).click();
  await expect(page.getByTestId("notice")).toContainText("signed out everywhere");
  await expect(page.getByTestId("user-sessions")).toHaveText("Not signed in anywhere.");

  await victimPage.goto("/profile");
  await expect(victimPage).toHaveURL(/\/login/);
  await victim.close();
});
