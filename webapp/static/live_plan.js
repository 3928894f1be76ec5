// Live-show planning pages: "Add a segment" copies an empty segment row; the room page
// polls status.json for each clip's render state and reloads when the show's state changes.
(function () {
  const add = document.getElementById("add-segment");
  if (add) {
    add.addEventListener("click", () => {
      const rows = document.querySelectorAll("#segments .segment");
      const copy = rows[rows.length - 1].cloneNode(true);
      for (const field of copy.querySelectorAll("input, textarea")) field.value = "";
      copy.querySelector("input").placeholder = "Segment " + (rows.length + 1);
      copy.querySelector('input[type="file"]').name = "card_image_" + rows.length;
      add.before(copy);
    });
  }

  const show = document.getElementById("show");
  if (!show) return;
  function apply(data) {
    const clips = [data.idle, ...data.segments];
    for (const clip of clips) {
      const row = document.querySelector(`[data-render="${clip.render_id}"] .clip-status`);
      if (row) row.textContent = clip.status;
    }
  }
  async function poll() {
    try {
      const res = await fetch(show.dataset.src, { headers: { Accept: "application/json" } });
      if (res.ok) {
        const data = await res.json();
        if (data.status !== show.dataset.status) { window.location.reload(); return; }
        apply(data);
      }
    } catch (e) { /* offline: try again */ }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
