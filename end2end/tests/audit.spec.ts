import { expect, PASSWORD, register, signInAsAdmin, test, uniqueEmail, userIdOf } from "./helpers";

test("a regular user gets 403 on the audit log, and anonymous visitors sign in first", async ({ page, browser }) => {
  await register(page, uniqueEmail("auditregular"));
  const response = await page.goto("/admin/audit?user_id=1");
  expect(response?.status()).toBe(403);
  await expect(page.getByTestId("forbidden")).toBeVisible();
  await expect(page.getByTestId("audit-event")).toHaveCount(0);

  const anonymous = await browser.newPage();
  await anonymous.goto("/admin/audit?event_type=logout");
  await expect(anonymous).toHaveURL(/\/login\?next=%2Fadmin%2Faudit%3Fevent_type%3Dlogout$/);
  await anonymous.close();
});

test("the admin pages through a user's events, filters by day, and is told about bad filters", async ({ page, request }) => {
  const email = uniqueEmail("auditpaging");
  await register(page, email);
  // Eleven API sign-ins: with the sign-up, twelve events about this user.
  for (let i = 0; i < 11; i++) {
    const response = await request.post("/api/v1/auth/login", { data: { email, password: PASSWORD } });
    expect(response.status()).toBe(200);
  }
  await page.context().clearCookies();
  await signInAsAdmin(page);
  const id = await userIdOf(page, email);

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).click();
  await page.getByRole("navigation", { name: "Administration" }).getByRole("link", { name: "Audit log" }).click();
  await expect(page).toHaveURL(/\/admin\/audit$/);
  await page.getByLabel("User id").fill(id);
  await page.getByLabel("Per page").selectOption("10");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.getByTestId("audit-count")).toHaveText("12 events found, showing 1–10");
  await expect(page.getByTestId("audit-event")).toHaveCount(10);
  await expect(page.getByTestId("audit-event").first()).toContainText("Signed in");
  await expect(page.getByRole("navigation", { name: "Pages" })).toContainText("Page 1 of 2");

  await page.getByRole("link", { name: "Older →" }).click();
  await expect(page).toHaveURL(new RegExp(`user_id=${id}&per_page=10&page=2$`));
  await expect(page.getByTestId("audit-count")).toHaveText("12 events found, showing 11–12");
  await expect(page.getByTestId("audit-event").last()).toContainText("Account created");
  await expect(page.getByRole("navigation", { name: "Pages" })).toContainText("Page 2 of 2");
  await expect(page.getByRole("link", { name: "Older →" })).toHaveCount(0);
  await page.getByRole("link", { name: "← Newer" }).click();
  await expect(page.getByTestId("audit-count")).toHaveText("12 events found, showing 1–10");

  // Days are whole UTC days, both ends included.
  const today = new Date().toISOString().slice(0, 10);
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  await page.goto(`/admin/audit?user_id=${id}&since=${today}&until=${today}`);
  await expect(page.getByTestId("audit-count")).toHaveText("12 events found, showing 1–12");
  await expect(page.getByLabel("From (UTC day)")).toHaveValue(today);
  await page.goto(`/admin/audit?user_id=${id}&since=${tomorrow}`);
  await expect(page.getByTestId("audit-count")).toHaveText("No events found");

  // A malformed filter is named, and the form is shown again.
  const response = await page.goto(`/admin/audit?user_id=${id}&since=${tomorrow}&until=${today}`);
  expect(response?.status()).toBe(422);
  await expect(page.getByRole("alert").filter({ hasText: "The end date is before the start date" })).toBeVisible();
  await expect(page.getByTestId("audit-event")).toHaveCount(0);
  await page.goto("/admin/audit?event_type=nonsense");
  await expect(page.getByRole("alert").filter({ hasText: "Choose an event type from the list" })).toBeVisible();

});

test.describe("on a phone-sized screen", () => {
  test.use({ viewport: { width: 390, height: 844 } });

  test("the audit table scrolls in its frame and no page overflows", async ({ page }) => {
    await signInAsAdmin(page);
    const pageWidth = () => page.evaluate(() => document.documentElement.scrollWidth);
    await expect(page.getByTestId("activity-item").first()).toBeVisible();
    expect(await pageWidth()).toBeLessThanOrEqual(390);

    await page.goto("/admin/audit");
    await expect(page.getByTestId("audit-event").first()).toBeVisible();
    expect(await pageWidth()).toBeLessThanOrEqual(390);
    const frame = page.getByRole("region", { name: "Audit events" });
    const sizes = await frame.evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
    expect(sizes.scroll).toBeGreaterThan(sizes.client);
    expect(sizes.client).toBeLessThanOrEqual(390);

    await page.goto("/admin/users");
    await expect(page.getByTestId("user-count")).toBeVisible();
    expect(await pageWidth()).toBeLessThanOrEqual(390);
  });
});
