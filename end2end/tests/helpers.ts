import { Browser, BrowserContext, expect, Page, test as base } from "@playwright/test";

/**
 * The browser's note about a request the server refused (401 wrong
 * password, 403, 422, 429 throttled...): the specs check those outcomes on
 * the page themselves.
 */
const REFUSED_REQUEST = /^Failed to load resource: the server responded with a status of 4\d\d /;

/**
 * Collects the uncaught exceptions and console errors of every page of
 * `context` (a Content-Security-Policy violation or a wasm panic shows up
 * as one) into `errors`, except `allow`ed messages.
 */
export function watchErrors(context: BrowserContext, errors: string[] = [], allow: RegExp = REFUSED_REQUEST): string[] {
  context.on("weberror", (error) => errors.push(`${error.page()?.url() ?? ""}: ${error.error().message}`));
  context.on("console", (msg) => {
    if (msg.type() === "error" && !allow.test(msg.text())) errors.push(`${msg.page()?.url() ?? ""}: ${msg.text()}`);
  });
  return errors;
}

/**
 * `test` of every spec: fails a test whose pages logged a console error or
 * threw, in its own context and in any context it opens with
 * `browser.newContext()` / `browser.newPage()`.
 */
export const test = base.extend<{ browserErrors: string[] }>({
  browserErrors: [
    async ({ context, browser, javaScriptEnabled }, use) => {
      const errors = watchErrors(context);
      const newContext = browser.newContext;
      // Contexts a test opens itself (a second user, the admin) run with
      // scripts on or off like the project's own.
      browser.newContext = async (options: Parameters<Browser["newContext"]>[0] = {}) =>
        watchNew(await newContext.call(browser, { javaScriptEnabled, ...options }), errors);
      try {
        await use(errors);
      } finally {
        browser.newContext = newContext;
      }
      expect(errors, "console errors or uncaught exceptions in the browser").toEqual([]);
    },
    { auto: true },
  ],
});

function watchNew(context: BrowserContext, errors: string[]): BrowserContext {
  watchErrors(context, errors);
  return context;
}

export { expect };

export const PASSWORD = "correct horse battery staple";
export const OTHER_PASSWORD = "violet tundra lantern orbit";
export const ADMIN_EMAIL = "operator@example.com";
export const ADMIN_PASSWORD = "sturdy orchid pinnacle harbor";

/** A fresh address for each test, so tests never depend on each other. */
export function uniqueEmail(prefix = "user"): string {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

export async function register(page: Page, email: string, password = PASSWORD) {
  await page.goto("/register");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByLabel("Confirm password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/profile/);
  await expect(page.getByTestId("profile-email")).toHaveText(email);
}

export async function signIn(page: Page, email: string, password = PASSWORD, path = "/login") {
  await page.goto(path);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

export async function signOut(page: Page) {
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Sign in" })).toBeVisible();
}

/** Signs the admin in on `page` and waits for the profile. */
export async function signInAsAdmin(page: Page) {
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page).toHaveURL(/\/profile/);
}

/** The id of the user with this email, as the admin's user search finds it (admin signed in on `page`). */
export async function userIdOf(page: Page, email: string): Promise<string> {
  await page.goto(`/admin/users?q=${encodeURIComponent(email)}`);
  await page.getByRole("link", { name: email, exact: true }).click();
  await expect(page).toHaveURL(/\/admin\/users\/\d+/);
  return page.url().match(/\/admin\/users\/(\d+)/)![1];
}
