import { expect, register, test, uniqueEmail } from "./helpers";

// The e2e server runs with ACCESS_TOKEN_EXPIRE_MINUTES=1: after a minute the
// access cookie is gone and the next request must rotate the session.
// Three tabs of one browser reloading at that moment all carry the same
// refresh cookie: every one must stay signed in, and the cookie jar must end
// with a refresh token that works, whatever order the answers arrive in.
test("an expired access token is refreshed without the user noticing, in three tabs at once", async ({
  page,
  context,
}) => {
  test.setTimeout(120_000);
  const email = uniqueEmail("refresh");
  await register(page, email);
  const tabs = [page, await context.newPage(), await context.newPage()];
  for (const tab of tabs) {
    await tab.goto("/profile");
    await expect(tab.getByTestId("profile-email")).toHaveText(email);
  }
  const before = await context.cookies();
  const refreshBefore = before.find((c) => c.name === "__Host-leptos-auth-refresh")!.value;

  await page.waitForTimeout(62_000);
  expect((await context.cookies()).find((c) => c.name === "__Host-leptos-auth-access")).toBeUndefined();

  await Promise.all(tabs.map((tab) => tab.reload()));
  for (const tab of tabs) {
    await expect(tab).toHaveURL(/\/profile$/);
    await expect(tab.getByTestId("profile-email")).toHaveText(email);
  }
  const after = await context.cookies();
  expect(after.find((c) => c.name === "__Host-leptos-auth-access")).toBeDefined();
  const refreshAfter = after.find((c) => c.name === "__Host-leptos-auth-refresh")!.value;
  expect(refreshAfter).not.toBe(refreshBefore);

  // The session is still live and the jar's refresh cookie is its current
  // one: without the access cookie, the next page rotates it again.
  await context.clearCookies({ name: "__Host-leptos-auth-access" });
  await tabs[1].goto("/profile");
  await expect(tabs[1]).toHaveURL(/\/profile$/);
  await expect(tabs[1].getByTestId("profile-email")).toHaveText(email);
  const last = await context.cookies();
  expect(last.find((c) => c.name === "__Host-leptos-auth-refresh")!.value).not.toBe(refreshAfter);
});
