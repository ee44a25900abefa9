import { ADMIN_EMAIL, ADMIN_PASSWORD, expect, test } from "./helpers";

// The API docs work offline: every asset comes from this server, and an
// authorized call made from the page reaches the API.
test("the API docs load offline and run an authorized call @js", async ({ page }) => {
  const external: string[] = [];
  const errors: string[] = [];
  page.on("request", (request) => {
    if (!/^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(request.url()) && !request.url().startsWith("data:")) external.push(request.url());
  });
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(msg.text());
  });

  await page.goto("/docs");
  await expect(page.locator(".info .title")).toContainText("leptos-auth");

  await page.getByRole("button", { name: /Authorize/ }).first().click();
  const dialog = page.locator(".auth-container").filter({ hasText: "oauth2" });
  await dialog.locator("#oauth_username").fill(ADMIN_EMAIL);
  await dialog.locator("#oauth_password").fill(ADMIN_PASSWORD);
  await dialog.getByRole("button", { name: "Apply given OAuth2 credentials" }).click();
  await expect(dialog.getByRole("button", { name: /Logout|Remove/ }).first()).toBeVisible();
  await dialog.getByRole("button", { name: "Close" }).first().click();

  const operation = page.locator("#operations-users-me");
  await operation.locator(".opblock-summary").click();
  await operation.getByRole("button", { name: "Execute" }).click();
  await expect(operation.locator(".live-responses-table tbody .response-col_status").first()).toHaveText("200");
  await expect(operation.locator(".live-responses-table")).toContainText(ADMIN_EMAIL);

  expect(external).toEqual([]);
  expect(errors).toEqual([]);
});
