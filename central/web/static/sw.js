// Keeps My pass and its scripts available offline: network first, the cached copy otherwise.
"use strict";
var CACHE = "cs-pass-v1";
var SHELL = ["/pass", "/static/style.css", "/static/app.js", "/static/pass.js",
  "/static/passkeys.js", "/static/vendor/qrcode.js", "/manifest.webmanifest"];
self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.addAll(SHELL); }).catch(function () {}));
  self.skipWaiting();
});
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });
self.addEventListener("fetch", function (event) {
  var url = new URL(event.request.url);
  if (event.request.method !== "GET" || SHELL.indexOf(url.pathname) < 0) return;
  event.respondWith(fetch(event.request).then(function (response) {
    var copy = response.clone();
    if (response.ok) caches.open(CACHE).then(function (cache) { cache.put(event.request, copy); });
    return response;
  }).catch(function () { return caches.match(event.request); }));
});
