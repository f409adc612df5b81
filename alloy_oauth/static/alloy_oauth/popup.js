// The page the OAuth popup lands on: report the result (never a token) to the page that
// opened it, on this origin, then close.
//
// Two channels, because providers' pages often send Cross-Origin-Opener-Policy, which cuts
// the popup off from its opener for good: window.opener.postMessage to this exact origin, and
// a BroadcastChannel, which reaches same-origin pages whatever happened to the opener. The
// page that runs connect.js must therefore be on the callback's origin.
(function () {
  "use strict";
  var data = document.getElementById("alloy-oauth-result");
  if (!data) { return; }
  var result = JSON.parse(data.textContent);
  var opener = window.opener;
  if (opener && !opener.closed) {
    opener.postMessage(result, window.location.origin);
  }
  if (window.BroadcastChannel) {
    var channel = new BroadcastChannel("alloy_oauth");
    channel.postMessage(result);
    channel.close();
  }
  window.close();  // (a browser that will not close it leaves the link onwards showing)
})();
