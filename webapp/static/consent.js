// Live consent recording: camera + microphone with MediaRecorder, uploaded to the API.
(function () {
  const state = document.getElementById("state");
  const revoke = document.getElementById("revoke");
  if (revoke) {
    revoke.addEventListener("click", async () => {
      if (!confirm("Withdraw your consent? Your recordings and model will be destroyed.")) return;
      const res = await fetch(revoke.dataset.url, { method: "POST" });
      state.textContent = res.ok ? "You withdrew your consent." : "Could not withdraw: try again.";
      if (res.ok) revoke.remove();
    });
  }
  const box = document.getElementById("recorder");
  if (!box) return;
  const [rec, stop, send] = ["record", "stop", "submit"].map((id) => document.getElementById(id));
  const preview = document.getElementById("preview");
  const reasons = {
    passcode_not_heard: "we did not hear your code: read the whole statement clearly",
    passcode_expired: "the code expired: reload the page for a new one",
    statement_not_heard: "we did not hear the statement: read it in full",
    no_face: "we did not see your face: face the camera in good light",
    not_live: "the video looks like a still picture: record yourself live",
    face_mismatch_kyc: "the face does not match your identity check",
    face_mismatch_training: "the face does not match the training video",
    voice_mismatch: "the voice does not match the voice samples",
    kyc_missing: "your identity is not verified yet: a reviewer will check",
    underage: "you must be 18 or older",
    protected_person: "you resemble a person on our protected list: a reviewer will check",
  };
  const take = window.dhfRecorder({
    record: rec, stop, send, state,
    constraints: {
      video: true,
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    },
    unavailable: "Camera or microphone not available: allow access and try again.",
    recording: "Recording… read the statement, then press Stop.",
    onStream: (stream) => { preview.srcObject = stream; },
    onStopped: () => { state.textContent = "Recorded. Send it, or record again."; },
  });

  send.addEventListener("click", async () => {
    send.disabled = true;
    state.textContent = "Checking your statement…";
    const form = new FormData();
    form.append("video", take.blob("video/webm"), "consent.webm");
    form.append("source", "browser"); // recorded live on this page, not a file
    const res = await fetch(box.dataset.upload, { method: "POST", body: form });
    const body = await res.json();
    if (!res.ok) { state.textContent = body.message || "Upload failed: try again."; send.disabled = false; return; }
    box.dataset.status = body.status;
    if (body.status === "verified") state.textContent = "Thank you: your consent is recorded.";
    else if (body.status === "needs_review") state.textContent = "Received: a reviewer will check it (" + body.reasons.map((r) => reasons[r] || r).join("; ") + ").";
    else state.textContent = "Not accepted: " + body.reasons.map((r) => reasons[r] || r).join("; ") + ". Reload for a new code and try again.";
  });
})();
