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
  var table = document.getElementById("alloy-oauth-validate-result");
  var status = document.getElementById("alloy-oauth-validate-status");
  var proof = document.getElementById("alloy-oauth-validation-proof");
  var form = validate.form;
  // The id of the popup this page opened: only its result counts. Any page can send
  // "alloy_oauth" messages to this origin (BroadcastChannel reaches every tab, and a page of
  // ours opened by another site reports its own failure).
  var flow = null;

  // Rows come from the server: {name, state: ok|failed|warning, symbol, message}.
  function show(rows, message, state) {
    table.innerHTML = "";
    rows.forEach(function (row) {
      var line = table.insertRow();
      line.className = "alloy-oauth-" + row.state;
      [row.name, row.symbol, row.message].forEach(function (text, index) {
        var cell = index === 0 ? document.createElement("th") : line.insertCell();
        if (index === 0) { line.appendChild(cell); }
        if (index === 1) { cell.className = "alloy-oauth-symbol"; }
        cell.textContent = text;
      });
    });
    status.textContent = message || "";
    status.className = "alloy-oauth-validate-status" + (state ? " alloy-oauth-" + state : "");
  }

  function finished(ok, rows) {
    validate.disabled = false;
    show(rows, validate.getAttribute(ok ? "data-passed" : "data-failed"), ok ? "ok" : "failed");
  }

  validate.addEventListener("click", function () {
    // Open the popup now, while the click still counts as the user's gesture: a popup opened
    // after the pre-flight's round trip would be blocked.
    // Only OAuth 2.0 connectors (end users authorize) have a round trip in a popup.
    var authType = form.querySelector("[name=auth_type]");
    var popup = !authType || authType.value === "oauth2" ?
      window.open("", "alloy_oauth_validate", "width=600,height=700") : null;
    if (popup) { popup.document.write("<p style='font-family:sans-serif'>" + validate.getAttribute("data-checking") + "</p>"); }
    validate.disabled = true;
    proof.value = "";
    show([], validate.getAttribute("data-checking"));
    flow = window.crypto.getRandomValues(new Uint32Array(4)).join("-");  // 128 random bits
    // The page's values, saved or not (the form as Save would send it), the connection
    // parameters' values to validate with, and the popup's id.
    var values = new FormData(form);
    values.delete(proof.name);
    document.querySelectorAll("[data-alloy-oauth-param]").forEach(function (input) {
      values.append("param-" + input.getAttribute("data-alloy-oauth-param"), input.value);
    });
    values.append("_alloy_oauth_flow", flow);
    fetch(validate.getAttribute("data-url"), {
      method: "POST", credentials: "same-origin", body: values,
      headers: { "X-CSRFToken": form.querySelector("input[name=csrfmiddlewaretoken]").value },
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (result) {
      if (!result.ok) {
        if (popup) { popup.close(); }
        finished(false, result.checks);
        return;
      }
      show(result.checks, validate.getAttribute("data-checking"));
      if (!result.authorize_url) {  // no round trip to make: the pre-flight was all of it
        proof.value = flow;  // Save keeps the validation of these values
        finished(true, result.checks);
        return;
      }
      if (!popup) {  // blocked: going there in this window would lose the page's edits
        finished(false, result.checks);
        status.textContent = validate.getAttribute("data-popup-blocked");
        return;
      }
      popup.location.href = result.authorize_url;
      // The result comes as a message (below). A provider's Cross-Origin-Opener-Policy may
      // make the popup look closed while it is not, so closing only re-enables the button.
      var watch = setInterval(function () {
        if (popup.closed) { clearInterval(watch); validate.disabled = false; }
      }, 500);
    }).catch(function (error) {
      if (popup) { popup.close(); }
      finished(false, [{ name: "Validate credential", state: "failed", symbol: "\u2718",
                         message: String(error) }]);
    });
  });

  function received(data) {
    if (!(data && data.source === "alloy_oauth" && flow !== null && data.flow === flow)) { return; }
    var mine = flow;
    fetch(validate.getAttribute("data-result-url") + "?flow=" + encodeURIComponent(mine),
          { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (result) {
        if (!result.done || mine !== flow) { return; }
        if (result.ok) { proof.value = mine; }  // Save keeps the validation of these values
        finished(result.ok, result.rows);
      });
  }
  window.addEventListener("message", function (event) {
    if (event.origin === window.location.origin) { received(event.data); }
  });
  if (window.BroadcastChannel) {
    new BroadcastChannel("alloy_oauth").onmessage = function (event) { received(event.data); };
  }
})();
