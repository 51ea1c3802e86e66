// Shared by every page: the CSRF token for fetch() writes, and the service worker.
"use strict";
window.cs = {
  csrf: function () { return document.querySelector('meta[name="csrf"]').content; },
  // Sign-in posts carry the pre-sign-in token (double submit), other writes the session's.
  post: function (url, body, pre) {
    var token = pre ? document.querySelector('meta[name="csrf-pre"]').content : window.cs.csrf();
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  },
};
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(function () {});
}
