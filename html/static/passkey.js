// portvakt: the only script we ship. It runs on the two passkey pages
// (registering a key under "Mina inställningar", using one at login) and
// nowhere else; the CSP of every other page forbids script altogether.
//
// It passes the server's WebAuthn options to the browser and the browser's
// answer back in an ordinary form post (with the page's CSRF token): no
// fetch, no cookies read, no third-party code. Without WebAuthn (or without
// JavaScript) the page says so and links to the other methods.
"use strict";
(function () {
  var form = document.querySelector("form[data-passkey]");
  if (!form) {
    return;
  }
  var button = form.querySelector("[data-passkey-start]");
  var field = form.querySelector("input[name=response]");
  var status = document.getElementById("passkey-status");
  var unsupported = document.getElementById("passkey-unsupported");

  function say(key) {
    if (status) {
      status.textContent = form.getAttribute("data-msg-" + key) || "";
      status.hidden = false;
    }
  }

  if (!window.PublicKeyCredential || !navigator.credentials || !button || !field) {
    if (unsupported) {
      unsupported.hidden = false;
    }
    if (button) {
      button.disabled = true;
      button.hidden = true;
    }
    return;
  }

  function fromB64(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function toB64(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function ids(list) {
    return (list || []).map(function (c) {
      var copy = Object.assign({}, c);
      copy.id = fromB64(c.id);
      return copy;
    });
  }

  var creating = form.getAttribute("data-passkey") === "create";
  var options;
  try {
    options = JSON.parse(form.getAttribute("data-options")).publicKey;
  } catch (e) {
    say("failed");
    button.disabled = true;
    return;
  }
  options.challenge = fromB64(options.challenge);
  if (creating) {
    options.user.id = fromB64(options.user.id);
    options.excludeCredentials = ids(options.excludeCredentials);
  } else {
    options.allowCredentials = ids(options.allowCredentials);
  }

  function answer(cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: toB64(cred.rawId),
      type: cred.type,
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64(r.clientDataJSON) }
    };
    if (creating) {
      out.response.attestationObject = toB64(r.attestationObject);
      if (r.getTransports) {
        out.response.transports = r.getTransports();
      }
    } else {
      out.response.authenticatorData = toB64(r.authenticatorData);
      out.response.signature = toB64(r.signature);
      out.response.userHandle = r.userHandle ? toB64(r.userHandle) : null;
    }
    return JSON.stringify(out);
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    say("working");
    var asked = creating
      ? navigator.credentials.create({ publicKey: options })
      : navigator.credentials.get({ publicKey: options });
    asked.then(
      function (cred) {
        field.value = answer(cred);
        form.submit();
      },
      function (e) {
        // NotAllowedError: cancelled, timed out, or no matching key. The
        // challenge is still valid until it expires: let the user try again.
        button.disabled = false;
        // For support staff (and tests): what the browser said, in the DOM.
        form.setAttribute("data-error", String(e && e.name) + ": " + String(e && e.message));
        say(e && e.name === "InvalidStateError" ? "duplicate" : "cancelled");
      }
    );
  });
})();
