// The page the OAuth popup lands on: report the result to the window that opened it, at the
// exact origin recorded when the flow started, then close. The result never holds a token.
(function () {
  "use strict";
  var holder = document.getElementById("alloy-oauth-popup");
  var data = document.getElementById("alloy-oauth-result");
  if (!holder || !data) { return; }
  var origin = holder.getAttribute("data-opener-origin");
  var opener = window.opener;
  if (!opener || opener.closed || !origin) { return; }  // opened without a popup: stay
  opener.postMessage(JSON.parse(data.textContent), origin);
  window.close();
})();
