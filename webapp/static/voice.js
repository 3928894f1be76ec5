// One sentence at a time: MediaRecorder -> upload -> server-side checks (level, clipping,
// noise, speech, the right words) -> the counter, or the reason to record again.
(function () {
  const box = document.getElementById("voice-recorder");
  const items = Array.from(document.querySelectorAll("#sentences li"));
  const $ = (id) => document.getElementById(id);
  const [sentence, state, counter, bar, playback] = ["sentence", "state", "counter", "bar", "playback"].map($);
  const [rec, stop, send, prev, next] = ["record", "stop", "send", "prev", "next"].map($);
  let index = Math.max(items.findIndex((li) => li.dataset.done !== "true"), 0);

  function show(i) {
    index = (i + items.length) % items.length;
    const li = items[index];
    sentence.textContent = li.querySelector(".pick").textContent;
    state.textContent = li.dataset.done === "true" ? "Already recorded: record again to redo it." : "";
    send.disabled = true; playback.hidden = true;
  }
  items.forEach((li, i) => li.querySelector(".pick").addEventListener("click", (e) => { e.preventDefault(); show(i); }));
  prev.addEventListener("click", () => show(index - 1));
  next.addEventListener("click", () => show(index + 1));

  const take = window.dhfRecorder({
    record: rec, stop, send, state,
    constraints: {
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    },
    unavailable: "Microphone not available: allow access and try again.",
    recording: "Recording… read the sentence, then press Stop.",
    onStopped: () => {
      playback.src = URL.createObjectURL(take.blob("audio/webm"));
      playback.hidden = false;
      state.textContent = "Listen back if you like, then send it or record again.";
    },
  });

  send.addEventListener("click", async () => {
    send.disabled = true;
    state.textContent = "Checking your take…";
    const form = new FormData();
    form.append("audio", take.blob("audio/webm"), "take.webm");
    form.append("prompt_id", items[index].dataset.id);
    const res = await fetch(box.dataset.upload, { method: "POST", body: form, headers: { "X-CSRFToken": box.dataset.csrf } });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) { state.textContent = body.message || "Upload failed: try again."; send.disabled = false; return; }
    const li = items[index];
    li.dataset.done = "true"; li.querySelector(".done").textContent = "✓ recorded (redo)";
    counter.textContent = body.count + " / " + (body.count + body.remaining);
    bar.value = body.count;
    const left = items.findIndex((x, i) => i > index && x.dataset.done !== "true");
    show(left >= 0 ? left : items.findIndex((x) => x.dataset.done !== "true"));
    state.textContent = body.remaining ? "Saved. Next sentence:" : "All sentences recorded. Thank you!";
  });

  show(index);
})();
