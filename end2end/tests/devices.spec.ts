import { expect, test } from "@playwright/test";
import { register, signIn, uniqueEmail } from "./helpers";

test("a user sees both devices and signs the other one out", async ({ page, browser }) => {
  const email = uniqueEmail("devices");
  await register(page, email);

  const other = await browser.newContext({
    userAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
  });
  const otherPage = await other.newPage();
  await signIn(otherPage, email);
  await expect(otherPage).toHaveURL(/\/profile/);

  await page.goto("/profile");
  const devices = page.getByTestId("device");
  await expect(devices).toHaveCount(2);
  await expect(devices.filter({ hasText: "This device" })).toHaveCount(1);
  const firefox = devices.filter({ hasText: "Firefox on Linux" });
  await expect(firefox).toContainText("last active just now");
  await firefox.getByRole("button", { name: "Sign out Firefox on Linux" }).click();
  await expect(page.getByTestId("notice")).toContainText("That device was signed out");
  await expect(page.getByTestId("device")).toHaveCount(1);

  // The other browser is signed out at its next navigation.
  await otherPage.goto("/profile");
  await expect(otherPage).toHaveURL(/\/login\?next=%2Fprofile/);
  await other.close();
});
