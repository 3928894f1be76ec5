// The Q&A editor: test a question against the set, and follow the clips' rendering.
(function () {
  "use strict";
  var form = document.getElementById("match-form");
  var results = document.getElementById("match-results");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData(form);
      fetch(form.dataset.url, {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "X-CSRFToken": data.get("csrf_token") },
      }).then(function (r) { return r.json(); }).then(function (body) {
        results.textContent = "";
        if (body.error) { results.textContent = body.message; return; }
        var head = document.createElement("li");
        head.textContent = body.fallback ? "Fallback answer plays (no answer above " + body.threshold + ")"
          : "Answer: " + body.answer_item_id;
        results.appendChild(head);
        body.ranked.slice(0, 5).forEach(function (row) {
          var li = document.createElement("li");
          li.textContent = row.score.toFixed(3) + " · " + row.lang + " · " + row.answer;
          results.appendChild(li);
        });
      });
    });
  }
  var section = document.getElementById("deployments");
  if (!section) { return; }
  function poll() {
    fetch(section.dataset.statusUrl, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        var rendering = false;
        body.deployments.forEach(function (dep) {
          var box = document.getElementById("dep-" + dep.id);
          if (!box) { return; }
          box.querySelector(".dep-progress").textContent = dep.progress.ready + " / " + dep.progress.total;
          dep.clips.forEach(function (c) {
            var row = box.querySelector('tr[data-key="' + c.key + '"] .clip-status');
            if (row) { row.textContent = c.status + (c.media !== "subtitle" && c.status !== "ready" ? " " + Math.round(c.progress * 100) + "%" : ""); }
          });
          if (dep.status === "rendering") { rendering = true; }
        });
        document.getElementById("set-status").textContent = body.status;
        if (rendering) { setTimeout(poll, 3000); }
      });
  }
  poll();
})();
