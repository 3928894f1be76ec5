// The live watch page: plays the show's HLS stream with the vendored hls.js and sends
// questions to the show (POST /api/v1/live/<slug>/comments).
(function () {
  "use strict";
  const root = document.getElementById("watch");
  const video = document.getElementById("stream");
  const status = document.getElementById("status");
  if (!root || root.dataset.live !== "yes") return;

  // The playlist appears a second or two after the show goes live: wait for it, and
  // start over whenever the player gives up (the show's outputs reconnect too).
  function play() {
    fetch(root.dataset.hls, { cache: "no-store" }).then(function (res) {
      if (!res.ok) { setTimeout(play, 1000); return; }
      attach();
    }, function () { setTimeout(play, 1000); });
  }

  function attach() {
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({ enableWorker: false, liveSyncDurationCount: 2 });
      hls.loadSource(root.dataset.hls);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, function () {
        if (!status.dataset.comment) status.textContent = "";
        video.play().catch(function () {});
      });
      hls.on(window.Hls.Events.ERROR, function (_, data) {
        if (data.fatal) {
          status.textContent = "The stream was interrupted: reconnecting.";
          hls.destroy();
          setTimeout(play, 1000);
        }
      });
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = root.dataset.hls;
    } else {
      status.textContent = "This browser cannot play the stream.";
    }
  }

  const form = document.getElementById("comment-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const input = document.getElementById("comment");
      const text = input.value.trim();
      if (!text) return;
      fetch(root.dataset.comment, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: text }),
      }).then(function (res) { return res.json().then(function (body) { return [res, body]; }); })
        .then(function (pair) {
          const res = pair[0], body = pair[1];
          if (!res.ok) { status.textContent = body.message || "Your question was not sent."; return; }
          input.value = "";
          status.textContent = body.status === "queued"
            ? "Thanks! The host answers your question in a moment."
            : "Thanks! Your question was passed to the show's operator.";
          status.dataset.comment = body.status;
        });
    });
  }
  play();
})();
