// The status board, live: rows follow the server-sent events of /w/{slug}/status/events.
// Text goes in through textContent only, never as HTML.
(function () {
  "use strict";
  var board = document.querySelector("table[data-live]");
  if (!board || !window.EventSource) { return; }
  var ORDER = ["down", "local_outage", "degraded", "unknown", "up"];
  var slug = board.getAttribute("data-slug");
  var live = document.getElementById("status-live");
  var source = new EventSource(board.getAttribute("data-live"));

  function label(status) { return status.replace(/_/g, " "); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function statusOf(row) {
    var badge = row.querySelector(".badge.status");
    var match = badge ? /status-([a-z_]+)/.exec(badge.className) : null;
    return match ? match[1] : "unknown";
  }

  function findRow(key) {
    var rows = board.querySelectorAll("tbody tr[data-platform]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-platform") === key) { return rows[i]; }
    }
    return null;
  }

  function newRow(change) {
    var row = el("tr");
    row.setAttribute("data-platform", change.platform);
    var head = el("th");
    head.setAttribute("scope", "row");
    var link = el("a", "", change.name || change.platform);
    link.href = "/w/" + slug + "/status/" + encodeURIComponent(change.platform);
    head.appendChild(link);
    row.appendChild(head);
    row.appendChild(el("td", "", change.owner || ""));
    var state = el("td");
    state.appendChild(el("span", "badge status"));
    row.appendChild(state);
    row.appendChild(el("td", "when"));
    row.appendChild(el("td", "details"));
    board.querySelector("tbody").appendChild(row);
    return row;
  }

  function apply(change, flash) {
    var row = findRow(change.platform) || newRow(change);
    var badge = row.querySelector(".badge.status");
    var changed = statusOf(row) !== change.status;
    badge.className = "badge status status-" + change.status;
    badge.textContent = label(change.status);
    var when = row.querySelector(".when");
    when.textContent = "";
    if (change.since) {
      when.appendChild(document.createTextNode(change.since));
      when.appendChild(el("span", "ago", change.ago || ""));
    } else {
      when.appendChild(el("span", "muted", "\u2014"));
    }
    var details = row.querySelector(".details");
    details.textContent = "";
    if (change.features && change.features.length) {
      details.appendChild(el("span", "features", change.features.join(", ")));
    }
    details.appendChild(document.createTextNode(change.reason || ""));
    if (flash && changed) {
      row.classList.remove("changed");
      void row.offsetWidth;  // restart the highlight animation
      row.classList.add("changed");
    }
  }

  // Worst first, as the server orders them: a platform that just went down moves up.
  function reorder() {
    var body = board.querySelector("tbody");
    var rows = Array.prototype.slice.call(body.querySelectorAll("tr[data-platform]"));
    rows.sort(function (a, b) {
      var rank = ORDER.indexOf(statusOf(a)) - ORDER.indexOf(statusOf(b));
      if (rank !== 0) { return rank; }
      return a.querySelector("th").textContent.toLowerCase()
        .localeCompare(b.querySelector("th").textContent.toLowerCase());
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function recount() {
    var counts = {};
    var rows = board.querySelectorAll("tbody tr[data-platform]");
    for (var i = 0; i < rows.length; i++) {
      var status = statusOf(rows[i]);
      counts[status] = (counts[status] || 0) + 1;
    }
    var summary = document.getElementById("status-summary");
    summary.textContent = "";
    ORDER.forEach(function (status) {
      if (!counts[status]) { return; }
      var item = el("li");
      item.appendChild(el("span", "badge status-" + status, label(status)));
      item.appendChild(document.createTextNode(" " + counts[status]));
      summary.appendChild(item);
    });
  }

  function asOf(text) {
    if (text) { document.getElementById("status-asof").textContent = text; }
  }

  source.addEventListener("snapshot", function (event) {
    var data = JSON.parse(event.data);
    data.rows.forEach(function (row) { apply(row, false); });
    recount();
    asOf(data.as_of);
  });
  source.addEventListener("state", function (event) {
    var change = JSON.parse(event.data);
    apply(change, true);
    reorder();
    recount();
    asOf(change.as_of);
  });
  source.addEventListener("open", function () {
    live.hidden = false;
    live.textContent = "live";
    live.classList.remove("offline");
  });
  source.addEventListener("error", function () {
    live.textContent = "reconnecting";
    live.classList.add("offline");
  });
}());
