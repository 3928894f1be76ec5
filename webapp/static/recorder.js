// One live recording with MediaRecorder, shared by the consent and voice pages.
// dhfRecorder({record, stop, send, state, constraints, unavailable, recording, onStream,
// onStart, onStopped}) wires the Record and Stop buttons and returns {blob(fallbackType)}.
// onStart runs the moment MediaRecorder starts: time zero of the recording.
window.dhfRecorder = function (o) {
  let recorder, chunks = [], stream;

  o.record.addEventListener("click", async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia(o.constraints);
    } catch (e) {
      o.state.textContent = o.unavailable;
      return;
    }
    if (o.onStream) o.onStream(stream);
    chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
    recorder.onstop = () => { o.send.disabled = false; o.onStopped(); };
    recorder.start(250);
    if (o.onStart) o.onStart();
    o.record.disabled = true; o.stop.disabled = false; o.send.disabled = true;
    o.state.textContent = o.recording;
  });

  o.stop.addEventListener("click", () => {
    recorder.stop();
    if (o.onStop) o.onStop();
    stream.getTracks().forEach((t) => t.stop());
    o.record.disabled = false; o.stop.disabled = true;
  });

  return {
    blob: (fallbackType) => new Blob(chunks, { type: recorder.mimeType || fallbackType }),
  };
};
