// The page the OAuth popup lands on: report the result (never a token) to the page that
// opened it, then close.
//
// Two channels, because providers' pages often send Cross-Origin-Opener-Policy, which cuts
// the popup off from its opener for good: window.opener.postMessage at the exact origin
// recorded when the flow started, and a BroadcastChannel, which reaches same-origin pages
// whatever happened to the opener.
(function () {
  "use strict";
  var holder = document.getElementById("alloy-oauth-popup");
  var data = document.getElementById("alloy-oauth-result");
  if (!holder || !data) { return; }
  var result = JSON.parse(data.textContent);
  var origin = holder.getAttribute("data-opener-origin");
  if (!origin || origin !== window.location.origin) { return; }  // not started as a popup here
  var opener = window.opener;
  if (opener && !opener.closed) {
    opener.postMessage(result, origin);
  }
  if (window.BroadcastChannel) {
    var channel = new BroadcastChannel("alloy_oauth");
    channel.postMessage(result);
    channel.close();
  }
  window.close();
})();
