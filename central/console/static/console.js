// The staff console's one script: CSRF-carrying writes, and live panels from /staff/events.
"use strict";
window.cs = {
  csrf: function () { return document.querySelector('meta[name="csrf"]').content; },
  // The members' passkeys.js calls these paths from the root; the console lives under /staff.
  post: function (url, body, pre) {
    var token = pre ? document.querySelector('meta[name="csrf-pre"]').content : window.cs.csrf();
    if (url.indexOf("/staff/") !== 0) url = "/staff" + url;
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  },
};
(function () {
  var status = document.getElementById("status");
  function say(text, ok) {
    if (!status) return;
    status.textContent = text;
    status.setAttribute("data-ok", ok ? "yes" : "no");
  }
  function reason(detail) {
    if (!detail) return "refused";
    if (typeof detail === "string") return detail;
    if (detail.message) return detail.message;
    return detail.reason || JSON.stringify(detail);
  }
  function problems(list) {
    var table = document.getElementById("import-problems");
    if (!table) return;
    var body = table.querySelector("tbody");
    body.textContent = "";
    (list || []).forEach(function (p) {
      var tr = document.createElement("tr");
      [p.row, p.column, p.message].forEach(function (v) {
        var td = document.createElement("td"); td.textContent = v === null ? "" : v; tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.hidden = !(list && list.length);
  }
  document.querySelectorAll("form[data-post]").forEach(function (form) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var answer = await fetch(form.getAttribute("action"), {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": window.cs.csrf() }, body: new FormData(form),
      });
      var json = {};
      try { json = await answer.json(); } catch (e) { json = {}; }
      if (answer.ok && json.ok !== false) {
        say(json.message || "done", true);
        problems([]);
        var show = form.getAttribute("data-show");
        if (show && json.qr) {
          var target = document.querySelector(show);
          target.innerHTML = json.qr;
          target.hidden = false;
        }
        if (form.id === "add-item" || form.id === "import-items") form.reset();
      } else {
        var detail = json.detail;
        say(answer.status + " " + reason(detail), false);
        if (detail && detail.problems) problems(detail.problems);
      }
    });
  });

  if (!document.querySelector("main table, .charts")) return;
  var events = new EventSource("/staff/events");
  events.addEventListener("open", function () { document.body.setAttribute("data-live", ""); });
  function cell(row, name, text, state) {
    var el = row.querySelector("." + name);
    if (!el) return;
    el.textContent = text;
    if (state !== undefined) el.setAttribute("data-state", state);
  }
  async function who(itemId) {
    var rows = document.querySelectorAll('#items tr[data-item="' + itemId + '"]');
    if (!rows.length) return;
    var answer = await fetch("/staff/items/" + encodeURIComponent(itemId) + "/line",
      { credentials: "same-origin" });
    if (!answer.ok) return;
    var line = await answer.json();
    rows.forEach(function (row) {
      if (line.state === "checked_out") cell(row, "who", line.member_id || "");
    });
  }
  events.addEventListener("availability", function (e) {
    JSON.parse(e.data).changes.forEach(function (c) {
      document.querySelectorAll('#items tr[data-item="' + c.item_id + '"]').forEach(function (row) {
        cell(row, "state", c.state.replace("_", " "), c.state);
        cell(row, "due", c.due_at ? c.due_at.slice(0, 10) : "");
        if (c.state !== "checked_out") cell(row, "who", "");
      });
      // Availability says that an item went out, not to whom: ask for the item's line.
      if (c.state === "checked_out") who(c.item_id);
    });
  });
  events.addEventListener("scan", function (e) {
    var body = document.querySelector("#feed tbody");
    if (!body) return;
    var s = JSON.parse(e.data), tr = document.createElement("tr");
    tr.setAttribute("data-reason", s.reason);
    tr.className = s.accepted ? "ok" : "no";
    [s.at.slice(11, 19), s.kiosk_id, s.reason, (s.item || s.item_id || ""), (s.member || "")]
      .forEach(function (v) { var td = document.createElement("td"); td.textContent = v; tr.appendChild(td); });
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > 100) body.removeChild(body.lastChild);
  });
  events.addEventListener("fleet", function (e) {
    var data = JSON.parse(e.data), count = document.getElementById("online-count");
    if (count) count.textContent = data.online;
    var table = document.querySelector("#kiosks tbody");
    Object.keys(data.kiosks).forEach(function (id) {
      var k = data.kiosks[id];
      var row = document.querySelector('#kiosks tr[data-kiosk="' + id + '"]');
      if (!row && table && !document.querySelector('input[name="q"]').value) {
        row = document.createElement("tr");
        row.setAttribute("data-kiosk", id);
        ["id", "shelf", "state", "last_seen", "version", "config", "fps", "decode_ms", "outbox"]
          .forEach(function (n) { var td = document.createElement("td"); td.className = n; row.appendChild(td); });
        row.querySelector(".id").textContent = id;
        table.appendChild(row);
      }
      if (!row) return;
      cell(row, "state", k.state, k.state);
      cell(row, "last_seen", k.last_seen ? k.last_seen.slice(11, 19) : "never");
      cell(row, "version", k.version || "");
      cell(row, "fps", k.fps === null ? "" : Math.round(k.fps));
      cell(row, "decode_ms", k.decode_ms === null ? "" : k.decode_ms.toFixed(1));
      cell(row, "outbox", k.outbox === null ? "" : k.outbox);
    });
  });
  events.addEventListener("charts", function (e) {
    var charts = JSON.parse(e.data);
    Object.keys(charts).forEach(function (name) {
      var box = document.getElementById("chart-" + name);
      if (box) box.innerHTML = charts[name];
    });
  });
})();
