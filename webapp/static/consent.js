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
  const cueBox = document.getElementById("cue");
  const statementBox = document.getElementById("statement");
  const challenge = JSON.parse(cueBox.dataset.challenge);
  let timers = [];
  const words = {
    turn_left: "Turn your head to YOUR LEFT, then back",
    turn_right: "Turn your head to YOUR RIGHT, then back",
  };
  const show = (text, active) => { cueBox.textContent = text; cueBox.classList.toggle("active", active); };
  // Each cue appears at the second the server chose, counted from the recording's start.
  const runChallenge = () => {
    timers.forEach(clearTimeout);
    statementBox.hidden = true;
    show("Look at the camera…", false);
    timers = challenge.map((c) => setTimeout(() => {
      show(c.cue === "say_digit" ? "Say: " + c.digit : words[c.cue], true);
      setTimeout(() => show("…", false), 1600);
    }, c.at_s * 1000));
    const last = challenge.length ? challenge[challenge.length - 1].at_s : 0;
    timers.push(setTimeout(() => {
      show("Now read the statement aloud, then press Stop", false);
      statementBox.hidden = false;
    }, (last + 2.5) * 1000));
  };
  const reasons = {
    passcode_not_heard: "we did not hear your code: say each digit clearly when it appears",
    challenge_timing: "the digits were not said when they appeared: say each one as soon as it shows",
    head_turn_missing: "we did not see your head turn when asked: turn it clearly to the side shown",
    passcode_expired: "the code expired: reload the page for a new one",
    statement_not_heard: "we did not hear the statement: read it in full",
    no_face: "we did not see your face: face the camera in good light",
    not_live: "the video looks like a still picture: record yourself live",
    face_mismatch_kyc: "the face does not match your identity check",
    face_mismatch_training: "the face does not match the training video",
    voice_mismatch_samples: "the voice does not match the recorded sentences",
    same_person_as_holder: "this shows the account holder: the depicted person must record their own consent",
    training_mismatch_kyc: "the training video does not match the identity check",
    kyc_missing: "your identity is not verified yet: a reviewer will check",
    underage: "you must be 18 or older",
    protected_person: "you resemble a person on our protected list: a reviewer will check",
  };
  const picker = document.getElementById("recording-file");
  if (picker) picker.addEventListener("change", () => { send.disabled = !picker.files.length; });
  const take = window.dhfRecorder({
    record: rec, stop, send, state,
    constraints: {
      video: true,
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    },
    unavailable: "Camera or microphone not available: allow access and try again.",
    recording: "Recording… read the statement, then press Stop.",
    onStream: (stream) => { preview.srcObject = stream; },
    onStart: runChallenge,
    onStop: () => timers.forEach(clearTimeout),
    onStopped: () => { state.textContent = "Recorded. Send it, or record again."; },
  });

  send.addEventListener("click", async () => {
    send.disabled = true;
    state.textContent = "Checking your statement…";
    const form = new FormData();
    const picked = document.getElementById("recording-file");
    if (picked && picked.files.length) form.append("video", picked.files[0], picked.files[0].name);
    else form.append("video", take.blob("video/webm"), "consent.webm");
    const res = await fetch(box.dataset.upload, { method: "POST", body: form });
    const body = await res.json();
    if (!res.ok) { state.textContent = body.message || "Upload failed: try again."; send.disabled = false; return; }
    box.dataset.status = body.status;
    if (body.status === "verified") state.textContent = "Thank you: your consent is recorded.";
    else if (body.status === "needs_review") state.textContent = "Received: a reviewer will check it (" + body.reasons.map((r) => reasons[r] || r).join("; ") + ").";
    else state.textContent = "Not accepted: " + body.reasons.map((r) => reasons[r] || r).join("; ") + ". Reload for a new code and challenge, and try again.";
  });
})();
