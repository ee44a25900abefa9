import { expect, test, uniqueEmail } from "./helpers";

// Every form is a plain HTML form; the Submit island only adds what a
// script can: while a valid form is on its way its button says so, and a
// second click does not send it again.
test("a form on its way says so, and a second click does not send it again @js", async ({ page }) => {
  await page.goto("/forgot-password");
  const button = page.getByRole("button", { name: "Send the link" });
  await expect(button).toHaveAttribute("data-interactive", "true");

  // An invalid form (no address) is not sent: the button stays as it is.
  await button.click();
  await expect(button).toHaveAttribute("aria-busy", "false");

  // While the post is held, Playwright's locators wait for the navigation:
  // record what the button shows (in sessionStorage, which outlives the
  // page) and click with the raw mouse.
  await page.evaluate(() => {
    const submit = document.querySelector("form button[type=submit]")!;
    const note = () =>
      sessionStorage.setItem("seen", `${sessionStorage.getItem("seen") ?? ""}|${submit.textContent}:${submit.getAttribute("aria-busy")}`);
    sessionStorage.removeItem("seen");
    new MutationObserver(note).observe(submit, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  let posts = 0;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/fn/forgot_password", async (route) => {
    posts += 1;
    await held;
    await route.continue();
  });
  await page.getByLabel("Email").fill(uniqueEmail("pending"));
  const box = (await button.boundingBox())!;
  const [x, y] = [box.x + box.width / 2, box.y + box.height / 2];
  await page.mouse.click(x, y);
  await page.mouse.click(x, y);
  await page.mouse.click(x, y);
  await expect.poll(() => posts).toBe(1);
  await page.waitForTimeout(500);
  release();
  await expect(page.getByTestId("notice")).toContainText("If an account with this email exists");
  expect(posts).toBe(1);
  expect(await page.evaluate(() => sessionStorage.getItem("seen"))).toContain("Sending…:true");
});
