/*
 * The Connections page keeps itself up to date: it polls its status URL (the table's
 * data-alloy-oauth-status, every data-alloy-oauth-poll ms; JSON of each connection's state
 * and dates, never a token) and, when that differs from what the page shows (the
 * #alloy-oauth-status it was rendered with), fetches the page again and swaps in its table
 * (fresh buttons and forms) and any new messages. It also does so instead of reloading after
 * a connection made with one of its buttons, so connect.js's "Connected to ..." stays shown.
 *
 * Polling stops while the tab is hidden (and polls at once when it shows again), backs off
 * (doubling, up to 5 minutes) while requests fail, and stops when the session has ended.
 */
(function (window, document) {
  "use strict";

  var MAX_DELAY_MS = 300000;
  var table = document.querySelector("[data-alloy-oauth-status]");
  var shown = document.getElementById("alloy-oauth-status");
  if (!table || !shown || !window.fetch || !window.DOMParser) { return; }
  var url = table.getAttribute("data-alloy-oauth-status");
  var interval = parseInt(table.getAttribute("data-alloy-oauth-poll"), 10) || 10000;
  var current = JSON.stringify(JSON.parse(shown.textContent));
  var delay = interval, timer = null, stopped = false;

  function schedule() {
    clearTimeout(timer);
    timer = (stopped || document.hidden) ? null : setTimeout(poll, delay);
  }

  function ok(response) {
    if (response.type === "opaqueredirect" || response.status === 401 ||
        response.status === 403) {
      stopped = true;  // logged out (the login page's redirect): nothing more to show
      throw new Error("signed out");
    }
    if (!response.ok) { throw new Error("HTTP " + response.status); }
    return response;
  }

  function poll() {
    timer = null;
    fetch(url, { credentials: "same-origin", cache: "no-store", redirect: "manual",
                 headers: { Accept: "application/json" } })
      .then(ok)
      .then(function (response) { return response.json(); })
      .then(function (status) {
        return JSON.stringify(status) === current ? null : redraw();
      })
      .then(function () { delay = interval; }, function () {
        delay = Math.min(delay * 2, MAX_DELAY_MS);
      })
      .then(schedule);
  }

  // The page as the server renders it now: its table and status replace ours; its messages
  // (which rendering it used up) are added to ours.
  function redraw() {
    return fetch(window.location.href, { credentials: "same-origin", cache: "no-store",
                                         redirect: "manual" })
      .then(ok)
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var freshTable = page.querySelector("[data-alloy-oauth-status]");
        var freshStatus = page.getElementById("alloy-oauth-status");
        if (!freshTable || !freshStatus) { throw new Error("not the Connections page"); }
        var freshTableHere = document.importNode(freshTable, true);
        table.replaceWith(freshTableHere);
        table = freshTableHere;
        current = JSON.stringify(JSON.parse(freshStatus.textContent));
        var messages = document.querySelector(".alloy-oauth-messages");
        page.querySelectorAll(".alloy-oauth-messages li").forEach(function (message) {
          if (messages) { messages.appendChild(document.importNode(message, true)); }
        });
        table.dispatchEvent(new CustomEvent("alloy-oauth:updated", { bubbles: true }));
      });
  }

  document.addEventListener("alloy-oauth:connected", function (event) {
    event.preventDefault();  // no reload: redraw, and keep saying "Connected to ..."
    clearTimeout(timer);
    redraw().then(null, function () { window.location.reload(); }).then(schedule);
  });

  document.addEventListener("visibilitychange", function () {
    clearTimeout(timer);
    timer = null;
    if (!document.hidden && !stopped) { poll(); }
  });

  schedule();
})(window, document);
