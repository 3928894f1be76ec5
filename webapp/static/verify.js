// Drag and drop onto the verify form: dropping a file selects it and submits the form.
(function () {
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file");
  const form = document.getElementById("verify-form");
  if (!zone || !input || !form) return;
  ["dragenter", "dragover"].forEach((e) =>
    zone.addEventListener(e, (ev) => { ev.preventDefault(); zone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((e) =>
    zone.addEventListener(e, (ev) => { ev.preventDefault(); zone.classList.remove("over"); }));
  zone.addEventListener("drop", (ev) => {
    if (ev.dataTransfer.files.length) { input.files = ev.dataTransfer.files; form.submit(); }
  });
  input.addEventListener("change", () => {
    zone.querySelector("span").textContent = input.files.length ? input.files[0].name : "Drop a video here";
  });
})();
