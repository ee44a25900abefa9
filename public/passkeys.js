// Passkeys on the pages: the WebAuthn ceremonies run here, in the browser,
// between the passkey server functions (/fn/passkey_*) and
// navigator.credentials. Loaded only by the pages that offer passkeys.
// Without JavaScript, or without WebAuthn, nothing here runs: the pages keep
// their "needs JavaScript" notes and the password forms work as ever.

const supported = typeof window.PublicKeyCredential === "function" && !!navigator.credentials;

const toBytes = (text) => {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
};

const toText = (buffer) => {
  let raw = "";
  for (const byte of new Uint8Array(buffer)) raw += String.fromCharCode(byte);
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

const withIds = (list) => (list || []).map((c) => ({ ...c, id: toBytes(c.id) }));

// The server's JSON options as the browser takes them.
const creationOptions = (options) => {
  const pk = options.publicKey;
  if (PublicKeyCredential.parseCreationOptionsFromJSON) {
    return { publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(pk) };
  }
  return {
    publicKey: {
      ...pk,
      challenge: toBytes(pk.challenge),
      user: { ...pk.user, id: toBytes(pk.user.id) },
      excludeCredentials: withIds(pk.excludeCredentials),
    },
  };
};

const requestOptions = (options) => {
  const pk = options.publicKey;
  if (PublicKeyCredential.parseRequestOptionsFromJSON) {
    return { publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(pk) };
  }
  return {
    publicKey: { ...pk, challenge: toBytes(pk.challenge), allowCredentials: withIds(pk.allowCredentials) },
  };
};

// The browser's answer as the server reads it.
const answer = (credential) => {
  if (typeof credential.toJSON === "function") return JSON.stringify(credential.toJSON());
  const r = credential.response;
  const response = { clientDataJSON: toText(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toText(r.attestationObject);
    if (r.getTransports) response.transports = r.getTransports();
  } else {
    response.authenticatorData = toText(r.authenticatorData);
    response.signature = toText(r.signature);
    if (r.userHandle) response.userHandle = toText(r.userHandle);
  }
  return JSON.stringify({
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: credential.getClientExtensionResults(),
  });
};

class Refusal extends Error {
  constructor(message, field) {
    super(message);
    this.field = field;
  }
}

// Calls a server function with form fields; its JSON answer, or a Refusal
// carrying the server's message.
const call = async (name, fields = {}) => {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && value !== null && value !== "") body.set(key, value);
  }
  const response = await fetch(`/fn/${name}`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body,
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  if (data && typeof data === "object") {
    const detail = Object.values(data)[0];
    if (typeof detail === "string") throw new Refusal(detail);
    if (detail && detail.message) throw new Refusal(detail.message, detail.field);
  }
  if (data === "Unauthenticated") throw new Refusal("Please sign in to continue");
  throw new Refusal("Something went wrong on our side. Please try again.");
};

// What a person is told when the browser's ceremony did not finish.
const explain = (error) => {
  if (error instanceof Refusal) return error.message;
  if (error && error.name === "NotAllowedError") {
    return "The passkey request was cancelled or timed out. Please try again.";
  }
  if (error && error.name === "InvalidStateError") {
    return "This authenticator already holds a passkey for your account.";
  }
  if (error && error.name === "SecurityError") {
    return "Your browser refused passkeys for this address. Open the site by its domain name (for example http://localhost).";
  }
  return "The passkey did not work in this browser. Please try again, or use your password.";
};

const show = (container, message) => {
  const box = container.querySelector("[data-passkey-error]");
  if (!box) return;
  box.textContent = message;
  box.hidden = !message;
};

const nextOf = (container) => {
  const field = container.querySelector("input[name=next]") || document.querySelector("input[name=next]");
  return field ? field.value : "";
};

// Runs `ceremony` on a click of `button`, at most one at a time.
const busy = (button, ceremony) => async (event) => {
  event.preventDefault();
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await ceremony();
  } finally {
    button.disabled = false;
    button.setAttribute("aria-busy", "false");
  }
};

const register = (form) => {
  const button = form.querySelector("button[type=submit]");
  form.addEventListener(
    "submit",
    busy(button, async () => {
      show(form, "");
      const name = form.elements.name.value;
      const confirm = form.elements.confirm_secret;
      try {
        const options = await call("passkey_register_start", { confirm_secret: confirm && confirm.value });
        const credential = await navigator.credentials.create(creationOptions(options));
        await call("passkey_register_finish", { name, credential: answer(credential) });
        window.location.assign("/profile?notice=passkey-added#passkeys");
      } catch (error) {
        // The confirmation window closed since the page was drawn: the
        // page asks for the password again.
        if (error instanceof Refusal && error.field === "confirm_secret" && !confirm) {
          window.location.reload();
          return;
        }
        show(form, explain(error));
      }
    }),
  );
};

const signIn = (container) => {
  const button = container.querySelector("button");
  let conditional = null;
  const finish = async (started, credential) => {
    const to = await call("passkey_sign_in_finish", {
      challenge_id: started.challenge_id,
      credential: answer(credential),
      next: nextOf(container),
    });
    window.location.assign(to);
  };
  button.addEventListener(
    "click",
    busy(button, async () => {
      show(container, "");
      if (conditional) {
        conditional.controller.abort();
        await conditional.done;
        conditional = null;
      }
      try {
        const started = await call("passkey_sign_in_start");
        const credential = await navigator.credentials.get(requestOptions(started.options));
        await finish(started, credential);
      } catch (error) {
        show(container, explain(error));
      }
    }),
  );
  // Passkey autofill in the email field, where the browser offers it.
  const offer = PublicKeyCredential.isConditionalMediationAvailable;
  if (typeof offer !== "function") return;
  offer.call(PublicKeyCredential).then(async (available) => {
    if (!available) return;
    const controller = new AbortController();
    const run = (async () => {
      try {
        const started = await call("passkey_sign_in_start");
        const credential = await navigator.credentials.get({
          ...requestOptions(started.options),
          mediation: "conditional",
          signal: controller.signal,
        });
        if (credential) await finish(started, credential);
      } catch (error) {
        if (!controller.signal.aborted) show(container, explain(error));
      }
    })();
    conditional = { controller, done: run };
  });
};

const secondFactor = (container) => {
  const button = container.querySelector("button");
  button.addEventListener(
    "click",
    busy(button, async () => {
      show(container, "");
      try {
        const options = await call("passkey_second_step_start");
        const credential = await navigator.credentials.get(requestOptions(options));
        const to = await call("passkey_second_step_finish", {
          credential: answer(credential),
          next: nextOf(container),
        });
        window.location.assign(to);
      } catch (error) {
        show(container, explain(error));
      }
    }),
  );
};

if (supported) {
  for (const note of document.querySelectorAll("[data-passkey-fallback]")) note.hidden = true;
  for (const element of document.querySelectorAll("[data-passkey]")) {
    if (element.dataset.ready) continue;
    element.dataset.ready = "true";
    element.hidden = false;
    ({ register, "sign-in": signIn, "second-factor": secondFactor })[element.dataset.passkey](element);
  }
}
