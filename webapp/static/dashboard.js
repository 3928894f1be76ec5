// Live job progress: poll the dashboard's JSON every 2 s while any job is still active.
(function () {
  const list = document.getElementById("jobs");
  if (!list) return;
  const active = new Set(["queued", "started", "retrying"]);

  function row(job) {
    let li = list.querySelector(`[data-job="${job.id}"]`);
    if (!li) {
      li = document.createElement("li");
      li.dataset.job = job.id;
      li.innerHTML = '<span class="kind"></span><progress max="1"></progress>' +
        '<span class="pct"></span><span class="stage"></span><span class="pill"></span>';
      list.prepend(li);
      const empty = document.getElementById("no-jobs");
      if (empty) empty.remove();
    }
    li.querySelector(".kind").textContent = job.kind;
    li.querySelector("progress").value = job.progress;
    li.querySelector(".pct").textContent = Math.round(job.progress * 100) + "%";
    li.querySelector(".stage").textContent = job.stage;
    const pill = li.querySelector(".pill");
    pill.textContent = job.status;
    pill.className = "pill " + job.status;
  }

  async function poll() {
    try {
      const res = await fetch(list.dataset.src, { headers: { Accept: "application/json" } });
      if (!res.ok) return;
      const data = await res.json();
      data.jobs.slice().reverse().forEach(row);
      if (data.jobs.some((j) => active.has(j.status))) setTimeout(poll, 2000);
      else setTimeout(poll, 10000);
    } catch (e) {
      setTimeout(poll, 5000);
    }
  }
  poll();
})();
