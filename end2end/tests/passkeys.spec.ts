import type { CDPSession, Page } from "@playwright/test";
import { ageAuthentication, enrol } from "./factors";
import { expect, PASSWORD, register, signIn, signOut, test, uniqueEmail } from "./helpers";

// Passkeys in a real Chromium with its virtual authenticator (CTAP2, an
// internal platform authenticator with discoverable credentials and user
// verification), driven over the DevTools protocol. The pages are opened as
// localhost: WebAuthn refuses an IP address as the relying party.

/** A platform authenticator for `page`'s tab. */
async function virtualAuthenticator(page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

async function addPasskey(page: Page, name: string) {
  await page.goto("/profile");
  const section = page.getByTestId("passkeys");
  await expect(section.getByTestId("no-passkeys")).toBeVisible();
  await section.getByLabel("Name of the new passkey (e.g. Laptop)").fill(name);
  await section.getByTestId("add-passkey").click();
  await expect(page).toHaveURL(/\/profile\?notice=passkey-added/);
  await expect(page.getByTestId("notice")).toContainText("Your passkey was added");
  await expect(page.getByTestId("passkey-name")).toHaveText([name]);
}

test("a passkey added on the profile signs in without an email, stands in for the code, and is removed @js", async ({ page }) => {
  const { cdp, authenticatorId } = await virtualAuthenticator(page);
  const email = uniqueEmail("passkey");
  await register(page, email);
  await expect(page.getByTestId("passkeys").getByText("needs JavaScript")).toBeHidden();
  await addPasskey(page, "Laptop");
  await expect(page.getByTestId("passkey")).toContainText("never used yet");
  // The authenticator holds one discoverable credential for this site.
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  expect(credentials).toHaveLength(1);
  expect(credentials[0].isResidentCredential).toBe(true);
  expect(credentials[0].rpId).toBe("localhost");

  // Sign out, then sign in with the passkey alone: no email typed. The
  // sign-in page asks with conditional mediation (passkey autofill), which
  // the virtual authenticator answers at once.
  await signOut(page);
  await page.goto("/login?next=/profile%3Ffrom%3Dpasskey");
  await expect(page).toHaveURL(/\/profile\?from=passkey$/);
  await expect(page.getByTestId("profile-email")).toHaveText(email);
  await expect(page.getByTestId("passkey")).toContainText("last used just now");

  // A browser without passkey autofill: the button.
  await page.addInitScript(() => {
    PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  await signOut(page);
  await page.goto("/login");
  await expect(page).toHaveURL(/\/login$/);
  await page.getByTestId("passkey-sign-in").click();
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-email")).toHaveText(email);

  // With two-factor authentication on, the passkey stands in for the code.
  await enrol(page);
  await signOut(page);
  await signIn(page, email);
  await expect(page).toHaveURL(/\/login\/two-factor/);
  await page.getByTestId("passkey-second-factor").click();
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-email")).toHaveText(email);

  // Renamed, then removed: removing asks for the password once the
  // session's last authentication is old.
  const item = page.getByTestId("passkey");
  await item.getByText("Rename or remove").click();
  await item.getByLabel("New name").fill("Work laptop");
  await item.getByRole("button", { name: "Rename" }).click();
  await expect(page.getByTestId("passkey-name")).toHaveText(["Work laptop"]);
  ageAuthentication(email);
  await page.reload();
  await item.getByText("Rename or remove").click();
  await item.getByLabel("Your password, or a two-factor code").fill(PASSWORD);
  await item.getByRole("button", { name: "Remove this passkey" }).click();
  await expect(page.getByTestId("notice")).toContainText("The passkey was removed");
  await expect(page.getByTestId("no-passkeys")).toBeVisible();

  // It no longer signs in (the browser still holds it); the password does.
  await signOut(page);
  await page.goto("/login");
  await page.getByTestId("passkey-sign-in").click();
  await expect(page.locator("[data-passkey=sign-in] [data-passkey-error]")).toHaveText(/not accepted/);
  await expect(page).toHaveURL(/\/login/);
});

test("adding a passkey asks for the password when the session's sign-in is old @js", async ({ page }) => {
  await virtualAuthenticator(page);
  const email = uniqueEmail("passkey-stepup");
  await register(page, email);
  ageAuthentication(email);
  await page.goto("/profile");
  const section = page.getByTestId("passkeys");
  await section.getByLabel("Name of the new passkey (e.g. Laptop)").fill("Phone");
  await section.getByLabel("Your password, or a two-factor code").fill("not the password");
  await section.getByTestId("add-passkey").click();
  await expect(section.locator("[data-passkey-error]")).toHaveText(/not right|Incorrect password/);
  await section.getByLabel("Your password, or a two-factor code").fill(PASSWORD);
  await section.getByTestId("add-passkey").click();
  await expect(page).toHaveURL(/notice=passkey-added/);
  await expect(page.getByTestId("passkey-name")).toHaveText(["Phone"]);
});

test("without JavaScript the pages say passkeys need it and the password works @no-js", async ({ page }) => {
  const email = uniqueEmail("passkey-nojs");
  await register(page, email);
  const section = page.getByTestId("passkeys");
  await expect(section.getByText("Adding a passkey needs JavaScript")).toBeVisible();
  await expect(section.getByTestId("add-passkey")).toBeHidden();
  await signOut(page);
  await page.goto("/login");
  await expect(page.getByText("Signing in with a passkey needs JavaScript")).toBeVisible();
  await expect(page.getByTestId("passkey-sign-in")).toBeHidden();
  await signIn(page, email);
  await expect(page).toHaveURL(/\/profile/);
});
