// The avatar page: poll status.json while anything runs; reload once a stage finishes
// so the next step's controls appear.
(function () {
  const steps = document.getElementById("steps");
  if (!steps) return;
  const running = new Set(["queued", "started", "retrying", "rendering", "training"]);
  let last = null;

  function apply(data) {
    for (const [key, step] of Object.entries(data.steps)) {
      const li = steps.querySelector(`[data-step="${key}"]`);
      if (!li) continue;
      li.className = "step " + step.state;
      li.querySelector(".detail").textContent = step.detail;
    }
    const job = data.steps.training.job;
    const box = document.getElementById("training-progress");
    if (job && box) {
      box.hidden = false;
      box.querySelector("progress").value = job.progress;
      box.querySelector(".pct").textContent = Math.round(job.progress * 100) + "%";
      box.querySelector(".stage").textContent = job.stage;
      const pill = box.querySelector(".pill");
      pill.textContent = job.status;
      pill.className = "pill " + job.status;
    }
    for (const r of data.renders) {
      const li = document.querySelector(`[data-render="${r.id}"]`);
      if (!li) continue;
      li.querySelector("progress").value = r.progress;
      li.querySelector(".stage").textContent = r.stage;
    }
  }

  function busy(data) {
    const job = data.steps.training.job;
    return (job && running.has(job.status)) || data.renders.some((r) => running.has(r.status)) ||
      data.steps.video.detail === "stored";
  }

  async function poll() {
    try {
      const res = await fetch(steps.dataset.src, { headers: { Accept: "application/json" } });
      if (res.ok) {
        const data = await res.json();
        const signature = JSON.stringify([data.status, data.renders.map((r) => r.status),
          Object.values(data.steps).map((s) => s.state)]);
        if (last !== null && signature !== last) { window.location.reload(); return; }
        last = signature;
        apply(data);
        setTimeout(poll, busy(data) ? 1500 : 8000);
        return;
      }
    } catch (e) { /* offline: try again */ }
    setTimeout(poll, 5000);
  }
  poll();
})();

// The consent link selects itself on a click (no inline handlers under the CSP).
document.querySelectorAll(".select-on-click").forEach((el) => {
  el.addEventListener("click", () => el.select());
});
