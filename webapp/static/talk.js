// The Q&A conversation page: start a conversation, play its AI notice clip (R26: the
// answers carry no spoken notice; the server answers nothing before this clip was
// fetched, and its response carries the token that may ask), ask by text or voice, play
// the approved answer clip (or show its subtitle), then back to idle: the deployment's
// stamped idle loop (the avatar listening, mouth closed, silent), played muted on a loop
// (older deployments without one: the notice clip held on its first frame).
(function () {
  "use strict";
  var root = document.getElementById("talk");
  if (!root) { return; }
  var video = document.getElementById("avatar");
  var subtitle = document.getElementById("subtitle");
  var status = document.getElementById("status");
  var form = document.getElementById("ask-form");
  var input = document.getElementById("question");
  var speak = document.getElementById("speak");
  var speakLang = document.getElementById("speak-lang");
  var conversation = null;
  var noticeUrl = null;
  var idleUrl = null;  // the idle loop's signed link, or null
  var noticePlaying = false;
  var waiting = null;  // an answer that came while the notice was still playing

  function say(text) { status.textContent = text || ""; }

  function idle() {
    root.dataset.playing = "idle";
    video.controls = false;
    if (idleUrl) {  // the idle loop: silent, so muted (autoplay allows it), repeating
      video.loop = true;
      video.muted = true;
      if (video.getAttribute("src") !== idleUrl) {
        video.setAttribute("src", idleUrl);
        video.load();
      }
      var started = video.play();
      if (started && started.catch) { started.catch(function () {}); }
      return;
    }
    if (!noticeUrl) { return; }  // no idle loop: the notice clip held on its first frame
    if (video.getAttribute("src") !== noticeUrl) {
      video.setAttribute("src", noticeUrl);
      video.load();
    } else {
      video.pause();
      video.currentTime = 0;
    }
  }

  function playClip(url) {
    video.loop = false;
    video.muted = false;
    video.setAttribute("src", url);
    video.load();
    return video.play();
  }

  function showSubtitle(text) {
    subtitle.textContent = text;
    subtitle.hidden = false;
  }

  function play(answer) {
    if (noticePlaying) { waiting = answer; return; }
    subtitle.hidden = true;
    if (answer.kind === "clip" && answer.url) {
      root.dataset.playing = "answer";
      var started = playClip(answer.url);
      if (started && started.catch) {
        started.catch(function () { say("Press play to hear the answer."); video.controls = true; });
      }
    } else {
      idle();
      showSubtitle(answer.text);
    }
  }

  video.addEventListener("ended", function () {
    if (noticePlaying) {
      noticePlaying = false;
      root.dataset.noticePlayed = "1";
      if (waiting) { var next = waiting; waiting = null; play(next); return; }
    }
    idle();
  });

  function playNotice() {
    noticePlaying = true;
    root.dataset.playing = "notice";
    var started = playClip(noticeUrl);
    if (started && started.catch) {
      started.catch(function () {
        say("Press play to hear the AI notice.");
        video.controls = true;
      });
    }
  }

  function handle(response) {
    return response.json().then(function (body) {
      if (!response.ok) {
        say(body.message || "Something went wrong.");
        if (response.status === 403) { form.querySelectorAll("input, button, select").forEach(function (el) { el.disabled = true; }); }
        return;
      }
      say("");
      play(body.answer);
      root.dataset.lastKind = body.answer.kind;
    });
  }

  function start() {
    return fetch(root.dataset.start, { method: "POST", credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { say(body.message); return; }
          document.getElementById("ai-notice").textContent = body.notice;
          return fetch(body.notice_url, { credentials: "same-origin" }).then(function (clip) {
            if (!clip.ok) { say("The AI notice could not be loaded: reload the page."); return; }
            conversation = clip.headers.get("X-Conversation");
            idleUrl = clip.headers.get("X-Idle-Clip");
            return clip.blob().then(function (blob) {
              noticeUrl = URL.createObjectURL(blob);
              root.dataset.conversation = "ready";
              playNotice();
            });
          });
        });
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var question = input.value.trim();
    if (!question || !conversation) { return; }
    say("…");
    fetch(root.dataset.ask, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Conversation": conversation },
      body: JSON.stringify({ question: question }),
    }).then(handle).catch(function () { say("The connection failed: try again."); });
  });

  // Hold to speak: MediaRecorder while the button is held, then send the recording.
  var recorder = null;
  var chunks = [];
  function startRecording() {
    if (recorder || !conversation || !navigator.mediaDevices) { return; }
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.ondataavailable = function (e) { if (e.data.size) { chunks.push(e.data); } };
      recorder.onstop = function () {
        stream.getTracks().forEach(function (t) { t.stop(); });
        var blob = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
        recorder = null;
        speak.classList.remove("recording");
        var data = new FormData();
        data.append("audio", blob, "question.webm");
        data.append("lang", speakLang.value);
        say("Listening…");
        fetch(root.dataset.askAudio, {
          method: "POST", headers: { "X-Conversation": conversation }, body: data,
        }).then(function (response) {
          return handle(response);
        }).catch(function () { say("The connection failed: try again."); });
      };
      recorder.start();
      speak.classList.add("recording");
    }).catch(function () { say("No microphone: type your question instead."); });
  }
  function stopRecording() { if (recorder && recorder.state === "recording") { recorder.stop(); } }
  speak.addEventListener("mousedown", startRecording);
  speak.addEventListener("touchstart", startRecording);
  speak.addEventListener("mouseup", stopRecording);
  speak.addEventListener("mouseleave", stopRecording);
  speak.addEventListener("touchend", stopRecording);

  start();
})();
