// The composer's live preview: re-render the per-channel preview while the person types.
// Progressive enhancement only: without this script the Preview button does the same.
(function () {
  "use strict";
  var form = document.getElementById("composer");
  var pane = document.getElementById("preview");
  if (!form || !pane || !window.fetch) { return; }
  var url = form.getAttribute("data-preview-url");
  var timer = null;
  var latest = 0;

  function refresh() {
    var data = new FormData(form);
    data.delete("image");  // uploads go through the Preview button, once
    var ticket = ++latest;
    fetch(url, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null && ticket === latest) { pane.innerHTML = html; }
      })
      .catch(function () { /* offline: the Preview button still works */ });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 500);
  }

  form.addEventListener("input", function (event) {
    if (event.target && event.target.type === "file") { return; }
    later();
  });
}());
