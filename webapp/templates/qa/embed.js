// A Q&A avatar on your page: the talk page in an iframe where this script tag is.
// Options on the tag: data-width, data-height (pixels). Served only to allowed sites.
(function () {
  "use strict";
  var tag = document.currentScript;
  if (!tag || !tag.parentNode) { return; }
  var frame = document.createElement("iframe");
  frame.src = {{ talk_url|tojson }};
  frame.title = "AI avatar (AI-generated)";
  frame.allow = "microphone; autoplay";
  frame.width = tag.getAttribute("data-width") || "480";
  frame.height = tag.getAttribute("data-height") || "640";
  frame.style.border = "0";
  frame.className = "dhf-avatar";
  tag.parentNode.insertBefore(frame, tag.nextSibling);
})();
