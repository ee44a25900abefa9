import { expect, test } from "./helpers";

// The foundation's smoke test: the page is rendered on the server, the wasm
// bundle hydrates it, the stylesheet applies, and the API answers beside it.
test("the home page is server-rendered, then hydrated, with its stylesheet @js", async ({ page }) => {
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));
  // A Content-Security-Policy violation would show up as a console error.
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(msg.text());
  });

  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  const headers = response!.headers();
  expect(headers["content-security-policy"]).toContain("frame-ancestors 'none'");
  expect(headers["x-content-type-options"]).toBe("nosniff");
  const html = await response!.text();
  expect(html).toContain("Authentication that is done right");
  expect(html).toContain("server-rendered");

  await expect(page.getByTestId("hydration-status")).toHaveText("interactive");
  const brandWeight = await page.locator(".brand").evaluate((el) => getComputedStyle(el).fontWeight);
  expect(brandWeight).toBe("700");
  expect(errors).toEqual([]);
});

test("without scripts the home page stays server-rendered and styled @no-js", async ({ page }) => {
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  await expect(page.getByRole("heading", { name: "Authentication that is done right" })).toBeVisible();
  const brandWeight = await page.locator(".brand").evaluate((el) => getComputedStyle(el).fontWeight);
  expect(brandWeight).toBe("700");
  // The wasm may still be fetched (the page's preload hint), but no island
  // runs: the badge keeps the server's word.
  await page.waitForLoadState("networkidle");
  await expect(page.getByTestId("hydration-status")).toHaveText("server-rendered");
});

test("unknown pages get the 404 page", async ({ page }) => {
  const response = await page.goto("/definitely/not/here");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
});

test("the JSON API answers next to the pages", async ({ request }) => {
  const health = await request.get("/health");
  expect(health.status()).toBe(200);
  expect(await health.json()).toEqual({ status: "healthy" });
  const me = await request.get("/api/v1/users/me");
  expect(me.status()).toBe(401);
  expect(await me.json()).toEqual({ detail: "Not authenticated" });
});
