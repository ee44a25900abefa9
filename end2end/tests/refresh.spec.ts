import { expect, register, test, uniqueEmail } from "./helpers";

// The e2e server runs with ACCESS_TOKEN_EXPIRE_MINUTES=1: after a minute the
// access cookie is gone and the next request must rotate the session.
test("an expired access token is refreshed without the user noticing", async ({ page, context }) => {
  test.setTimeout(120_000);
  const email = uniqueEmail("refresh");
  await register(page, email);
  const before = await context.cookies();
  const refreshBefore = before.find((c) => c.name === "__Host-leptos-auth-refresh")!.value;

  await page.waitForTimeout(62_000);
  expect((await context.cookies()).find((c) => c.name === "__Host-leptos-auth-access")).toBeUndefined();

  await page.goto("/profile");
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-email")).toHaveText(email);
  const after = await context.cookies();
  expect(after.find((c) => c.name === "__Host-leptos-auth-access")).toBeDefined();
  expect(after.find((c) => c.name === "__Host-leptos-auth-refresh")!.value).not.toBe(refreshBefore);
});
