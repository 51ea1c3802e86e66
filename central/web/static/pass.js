// My pass: a fresh code every step, computed here from this phone's secret (works offline).
"use strict";
(function () {
  var box = document.getElementById("pass");
  var STORE = "cs-device";
  var B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

  function base32(bytes) {
    var out = "", bits = 0, value = 0;
    for (var i = 0; i < bytes.length; i++) {
      value = (value << 8) | bytes[i]; bits += 8;
      while (bits >= 5) { out += B32[(value >>> (bits - 5)) & 31]; bits -= 5; }
    }
    if (bits > 0) out += B32[(value << (5 - bits)) & 31];
    return out;
  }

  async function device() {
    var saved = localStorage.getItem(STORE);
    if (saved) return JSON.parse(saved);
    var answer = await window.cs.post("/devices");
    if (!answer.ok) throw new Error("no device");
    var fresh = await answer.json();
    localStorage.setItem(STORE, JSON.stringify(fresh));
    return fresh;
  }

  async function code(dev, key, step) {
    var body = ["CS1", "D", dev.kid, dev.member_id, dev.device_id, step.toString(36).toUpperCase()].join(".");
    var mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body));
    return body + "." + base32(new Uint8Array(mac).slice(0, 15));
  }

  function draw(text) {
    var qr = qrcode(0, "M");
    qr.addData(text, "Alphanumeric");
    qr.make();
    var n = qr.getModuleCount(), quiet = 4, size = Math.min(box.clientWidth || 320, 480);
    var cell = Math.max(2, Math.floor(size / (n + 2 * quiet)));
    var canvas = document.createElement("canvas");
    canvas.width = canvas.height = cell * (n + 2 * quiet);
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#000";
    for (var r = 0; r < n; r++) for (var c = 0; c < n; c++) {
      if (qr.isDark(r, c)) ctx.fillRect((c + quiet) * cell, (r + quiet) * cell, cell, cell);
    }
    box.replaceChildren(canvas);
    document.getElementById("pass-text").textContent = text;
    box.dataset.code = text;
  }

  async function run() {
    var dev = await device();
    var raw = Uint8Array.from(atob(dev.secret), function (c) { return c.charCodeAt(0); });
    var key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    var shown = -1;
    async function tick() {
      var step = Math.floor(Date.now() / 1000 / dev.step_s);
      if (step !== shown) { shown = step; draw(await code(dev, key, step)); }
      document.getElementById("offline").hidden = navigator.onLine;
    }
    await tick();
    setInterval(tick, 1000);
  }

  // Keep the screen on while the pass shows (the kiosk needs a lit screen).
  async function stayAwake() {
    try { if ("wakeLock" in navigator) await navigator.wakeLock.request("screen"); } catch (e) {}
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") stayAwake();
  });
  stayAwake();
  // What the kiosk answered, in words, while a session is open there.
  if ("EventSource" in window) {
    var said = new EventSource("/events/me");
    said.addEventListener("open", function () { document.body.dataset.live = "1"; });
    said.addEventListener("verdict", function (event) {
      document.getElementById("after-scan").textContent = JSON.parse(event.data).text;
    });
  }
  run().catch(function (e) { box.textContent = String(e); });
})();
