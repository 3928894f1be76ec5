// Self-hosted identity check: a live selfie from the camera (getUserMedia -> canvas -> JPEG),
// put into the form's file input so the ordinary form post (with its CSRF token) sends it.
(function () {
  const on = document.getElementById("camera-on");
  if (!on) return;
  const take = document.getElementById("take");
  const video = document.getElementById("camera");
  const canvas = document.getElementById("shot");
  const input = document.getElementById("selfie");
  const state = document.getElementById("selfie-state");
  let stream;

  on.addEventListener("click", async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
    } catch (e) {
      state.textContent = "Camera not available: allow access, or choose a photo below.";
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    take.disabled = false;
    state.textContent = "Look at the camera, then press \"Take selfie\".";
  });

  take.addEventListener("click", () => {
    canvas.width = video.videoWidth || 640;
    canvas.height = video.videoHeight || 480;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => {
      const files = new DataTransfer();
      files.items.add(new File([blob], "selfie.jpg", { type: "image/jpeg" }));
      input.files = files.files;
      canvas.hidden = false;
      video.hidden = true;
      stream.getTracks().forEach((t) => t.stop());
      take.disabled = true;
      state.textContent = "Selfie taken. Press \"Start camera\" to take it again.";
    }, "image/jpeg", 0.92);
  });
})();
