// The live show console: polls console.json (comments, the unmatched list, lines with when
// they air, the show log, credits) and sends typed lines with the session's CSRF token.
(function () {
  "use strict";
  const root = document.getElementById("console");
  if (!root) return;
  const lineStatus = document.getElementById("line-status");

  function fill(id, rows, text) {
    const list = document.getElementById(id);
    list.replaceChildren();
    rows.forEach(function (row) {
      const item = document.createElement("li");
      item.textContent = text(row);
      list.appendChild(item);
    });
  }

  function when(iso) {
    if (!iso) return "";
    const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
    return seconds > 0 ? "in about " + seconds + " s" : "now";
  }

  function lineText(line) {
    if (line.status === "aired") return line.text + " · aired " + line.aired_at;
    if (line.status === "queued") return line.text + " · airs " + when(line.airs_at);
    if (line.status === "rendering") {
      return line.text + " · rendering, ready " + when(line.airs_after) +
        ", then airs at the next boundary";
    }
    return line.text + " · " + line.status;
  }

  function show(state) {
    document.getElementById("show-status").textContent =
      state.status + (state.stop_reason ? " (" + state.stop_reason + ")" : "");
    const c = state.credits;
    document.getElementById("credits").textContent =
      c.balance_s + " s (" + (c.minutes_left === null ? "free" : c.minutes_left + " live minutes") + ")";
    const warning = document.getElementById("credits-warning");
    warning.hidden = !c.low;
    warning.textContent = c.low
      ? "Credits are running low: the show stops when they cannot pay the next minute."
      : "";
    fill("lines", state.lines, lineText);
    fill("unmatched", state.unmatched, function (c) { return (c.author || "viewer") + ": " + c.text; });
    fill("comments", state.comments, function (c) {
      return (c.author || "viewer") + ": " + c.text + " · " + c.status;
    });
    fill("log", state.log, function (e) { return e.at + " " + e.event + (e.actor_id ? " by " + e.actor_id : ""); });
  }

  function poll() {
    fetch(root.dataset.state, { cache: "no-store", credentials: "same-origin" })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (state) { if (state) show(state); })
      .catch(function () {})
      .finally(function () { setTimeout(poll, 1500); });
  }

  document.getElementById("line-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const input = document.getElementById("line");
    const text = input.value.trim();
    if (!text) return;
    fetch(root.dataset.line, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": root.dataset.csrf },
      body: JSON.stringify({ text: text }),
    }).then(function (res) { return res.json().then(function (body) { return [res, body]; }); })
      .then(function (pair) {
        const res = pair[0], body = pair[1];
        if (!res.ok) { lineStatus.textContent = body.message || "The line was not sent."; return; }
        input.value = "";
        lineStatus.textContent = "Rendering your line: " + lineText(body);
      })
      .catch(function () { lineStatus.textContent = "The line was not sent: try again."; });
  });

  poll();
})();
