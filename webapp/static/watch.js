// The live watch page: plays the show's HLS stream with the vendored hls.js and sends
// questions to the show (POST /api/v1/live/<slug>/comments).
(function () {
  "use strict";
  const root = document.getElementById("watch");
  const video = document.getElementById("stream");
  const status = document.getElementById("status");
  if (!root || root.dataset.live !== "yes") return;

  function play() {
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({ enableWorker: false, liveSyncDurationCount: 2, manifestLoadingMaxRetry: 30,
                                   manifestLoadingRetryDelay: 500 });
      hls.loadSource(root.dataset.hls);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, function () { video.play().catch(function () {}); });
      hls.on(window.Hls.Events.ERROR, function (_, data) {
        if (data.fatal) { status.textContent = "The stream was interrupted: reconnecting."; hls.startLoad(); }
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
