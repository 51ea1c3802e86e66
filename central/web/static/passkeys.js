// Passkeys through WebAuthn: base64url on the wire, ArrayBuffers for the browser.
"use strict";
(function () {
  function toBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }
  function toText(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function said(id, text) { var el = document.getElementById(id); if (el) el.textContent = text; }

  async function signIn() {
    var options = await (await window.cs.post("/signin/passkey/options", undefined, true)).json();
    var credential = await navigator.credentials.get({ publicKey: {
      challenge: toBytes(options.challenge), rpId: options.rpId, timeout: options.timeout,
      userVerification: options.userVerification, allowCredentials: [],
    } });
    var answer = await window.cs.post("/signin/passkey", { challenge: options.challenge, credential: {
      id: credential.id, rawId: toText(credential.rawId), type: credential.type,
      response: {
        clientDataJSON: toText(credential.response.clientDataJSON),
        authenticatorData: toText(credential.response.authenticatorData),
        signature: toText(credential.response.signature),
        userHandle: credential.response.userHandle ? toText(credential.response.userHandle) : null,
      },
      clientExtensionResults: {},
    } }, true);
    if (answer.ok) { window.location = (await answer.json()).next; }
    else { said("signin-error", (await answer.json()).detail.reason); }
  }

  async function register() {
    var options = await (await window.cs.post("/passkeys/options")).json();
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    options.excludeCredentials = (options.excludeCredentials || []).map(function (c) {
      return { type: c.type, id: toBytes(c.id) };
    });
    var challenge = toText(options.challenge);
    var credential = await navigator.credentials.create({ publicKey: options });
    var answer = await window.cs.post("/passkeys", { challenge: challenge, credential: {
      id: credential.id, rawId: toText(credential.rawId), type: credential.type,
      response: {
        clientDataJSON: toText(credential.response.clientDataJSON),
        attestationObject: toText(credential.response.attestationObject),
      },
      clientExtensionResults: {},
    } });
    said("passkey-status", answer.ok ? "✓" : (await answer.json()).detail.reason);
  }

  var signin = document.getElementById("passkey-signin");
  if (signin) signin.addEventListener("click", function () {
    signIn().catch(function (e) { said("signin-error", String(e)); });
  });
  var add = document.getElementById("passkey-add");
  if (add) add.addEventListener("click", function () {
    register().catch(function (e) { said("passkey-status", String(e)); });
  });
})();
