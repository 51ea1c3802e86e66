// Shared by every page: the CSRF token for fetch() writes, and the service worker.
"use strict";
window.cs = {
  csrf: function () { return document.querySelector('meta[name="csrf"]').content; },
  post: function (url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": window.cs.csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  },
};
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(function () {});
}
