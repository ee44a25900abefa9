import { expect, register, signIn, signInAsAdmin, test, uniqueEmail, userIdOf } from "./helpers";

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

  // The user's own security activity shows it, newest first, with the
  // device that did it. The Firefox sign-in is there too.
  const activity = page.getByTestId("activity-item");
  await expect(activity.first()).toContainText("Device signed out");
  await expect(activity.first()).toContainText("just now");
  await expect(activity.first()).toContainText("127.0.0.1");
  await expect(activity.filter({ hasText: "Signed in" }).filter({ hasText: "Firefox on Linux" })).toHaveCount(1);
  await expect(activity.filter({ hasText: "Account created" })).toHaveCount(1);

  // The admin finds it in the audit log, filtered by that user.
  const admin = await browser.newContext();
  const adminPage = await admin.newPage();
  await signInAsAdmin(adminPage);
  const id = await userIdOf(adminPage, email);
  await adminPage.getByRole("link", { name: "Security activity" }).click();
  await expect(adminPage).toHaveURL(new RegExp(`/admin/audit\\?user_id=${id}$`));
  await expect(adminPage.getByLabel("User id")).toHaveValue(id);
  const revoked = adminPage.getByTestId("audit-event").filter({ hasText: "Device signed out" });
  await expect(revoked).toHaveCount(1);
  await expect(revoked).toHaveAttribute("data-event-type", "session_revoked");
  // The user did it (actor) to their own account (subject).
  await expect(revoked.getByRole("link", { name: `User ${id}`, exact: true })).toHaveCount(2);
  await expect(revoked).toContainText("127.0.0.1");

  // Narrowing to that type keeps the user filter.
  await adminPage.getByLabel("Event type").selectOption({ label: "Device signed out" });
  await adminPage.getByRole("button", { name: "Filter" }).click();
  await expect(adminPage).toHaveURL(new RegExp(`user_id=${id}&event_type=session_revoked`));
  await expect(adminPage.getByTestId("audit-count")).toHaveText("1 event found");
  await expect(adminPage.getByTestId("audit-event")).toHaveCount(1);
  await admin.close();

});

test("what an admin does to an account shows in its activity as by an administrator, without the admin's device", async ({ page, browser }) => {
  const email = uniqueEmail("watched");
  await register(page, email);

  // The admin works from Firefox; the user's browser is Chromium.
  const admin = await browser.newContext({
    userAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
  });
  const adminPage = await admin.newPage();
  await signInAsAdmin(adminPage);
  await userIdOf(adminPage, email);
  await adminPage.getByRole("button", { name: "Sign out everywhere" }).click();
  await expect(adminPage.getByTestId("notice")).toContainText("signed out everywhere");

  await page.goto("/profile");
  await expect(page).toHaveURL(/\/login\?next=%2Fprofile/);
  await signIn(page, email);
  await expect(page).toHaveURL(/\/profile/);
  const activity = page.getByTestId("activity-item");
  const byAdmin = activity.filter({ hasText: "Signed out everywhere by an admin" });
  await expect(byAdmin).toHaveCount(1);
  await expect(byAdmin).not.toContainText("Firefox");
  await expect(byAdmin).not.toContainText("127.0.0.1");
  await expect(page.getByTestId("activity")).not.toContainText("Firefox");
  // The user's own sign-ins keep their device and address.
  await expect(activity.filter({ hasText: "Signed in" }).first()).toContainText("127.0.0.1");

  // The admin's log keeps the admin's device.
  await adminPage.getByRole("link", { name: "Security activity" }).click();
  const event = adminPage.getByTestId("audit-event").filter({ hasText: "Signed out everywhere by an admin" });
  await expect(event).toHaveCount(1);
  await expect(event).toContainText("Firefox on Linux");
  await expect(event).toContainText("127.0.0.1");
  await admin.close();
});
