// The catalogue updates itself from central's availability events (server-sent events).
"use strict";
(function () {
  var labels = JSON.parse(document.getElementById("labels").innerHTML);
  var source = new EventSource("/events");
  // Marks the page live (tests and assistive tech can tell updates will come).
  source.addEventListener("open", function () { document.body.dataset.live = "1"; });
  source.addEventListener("availability", function (event) {
    JSON.parse(event.data).changes.forEach(show);
  });
  function show(change) {
    var row = document.querySelector('[data-item="' + CSS.escape(change.item_id) + '"] .state');
    if (!row) return;
    var text = labels[change.state] || change.state;
    if (change.due_at) text += " " + labels.until + " " + new Date(change.due_at).toDateString();
    row.textContent = text;
    row.dataset.state = change.state;
    row.className = "state state-" + change.state;
  }
})();
