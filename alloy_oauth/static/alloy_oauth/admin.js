// Connector page: the callback URL's Copy button, and "Validate credential".
(function () {
  "use strict";

  document.querySelectorAll(".alloy-oauth-copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy-target"));
      var done = function () { button.textContent = button.getAttribute("data-copied") || "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done);
      } else {  // plain http (dev): the old way
        field.select();
        document.execCommand("copy");
        done();
      }
    });
  });

  var validate = document.getElementById("alloy-oauth-validate");
  if (!validate) { return; }
  var list = document.getElementById("alloy-oauth-validate-result");
  // The id of the popup this page opened: only its result reloads the page. Any page can send
  // "alloy_oauth" messages to this origin (BroadcastChannel reaches every tab, and a page of
  // ours opened by another site reports its own failure), and a reload loses unsaved edits.
  var flow = null;

  function show(checks) {
    list.innerHTML = "";
    checks.forEach(function (check) {
      var item = document.createElement("li");
      item.className = check.ok ? "alloy-oauth-ok" : "alloy-oauth-failed";
      item.textContent = (check.ok ? "\u2714 " : "\u2718 ") + check.name + ": " + check.message;
      list.appendChild(item);
    });
  }

  validate.addEventListener("click", function () {
    // Open the popup now, while the click still counts as the user's gesture: a popup opened
    // after the pre-flight's round trip would be blocked.
    // (A connector without end users, client credentials, is validated without any popup.)
    var popup = validate.getAttribute("data-popup") === "1" ?
      window.open("", "alloy_oauth_validate", "width=600,height=700") : null;
    if (popup) { popup.document.write("<p style='font-family:sans-serif'>Checking the connector\u2026</p>"); }
    validate.disabled = true;
    show([{ ok: true, name: "Pre-flight", message: "running\u2026" }]);
    var token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
    // The values of the connector's connection parameters to validate with (its URLs need them).
    var values = new URLSearchParams();
    document.querySelectorAll("[data-alloy-oauth-param]").forEach(function (input) {
      values.append("param-" + input.getAttribute("data-alloy-oauth-param"), input.value);
    });
    fetch(validate.getAttribute("data-url"), {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": token },
      body: values,
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (result) {
      show(result.checks);
      if (!result.ok) {
        if (popup) { popup.close(); }
        validate.disabled = false;
        return;
      }
      if (!result.authorize_url) {  // validated already: the report is on the connector
        window.location.reload();
        return;
      }
      if (!popup) {  // blocked anyway: go there in this window (the popup page links back)
        window.location.href = result.authorize_url;
        return;
      }
      flow = window.crypto.getRandomValues(new Uint32Array(4)).join("-");  // 128 random bits
      popup.location.href = result.authorize_url + "&flow=" + flow;  // (it has a ?ticket=)
      // The result comes as a message (below). A provider's Cross-Origin-Opener-Policy may
      // make the popup look closed while it is not, so closing only re-enables the button.
      var watch = setInterval(function () {
        if (popup.closed) { clearInterval(watch); validate.disabled = false; }
      }, 500);
    }).catch(function (error) {
      if (popup) { popup.close(); }
      show([{ ok: false, name: "Pre-flight", message: String(error) }]);
      validate.disabled = false;
    });
  });

  function received(data) {
    if (data && data.source === "alloy_oauth" && flow !== null && data.flow === flow) {
      window.location.reload();  // the result is stored on the connector
    }
  }
  window.addEventListener("message", function (event) {
    if (event.origin === window.location.origin) { received(event.data); }
  });
  if (window.BroadcastChannel) {
    new BroadcastChannel("alloy_oauth").onmessage = function (event) { received(event.data); };
  }
})();
