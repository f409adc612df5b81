/*
 * alloy_oauth connect helper: AlloyOAuth.connect(slug, options) -> Promise
 *
 * Opens the connector's consent page in a centred popup and settles when the callback
 * reports back (connector slug, credential id, status - never a token):
 *   resolves with {source, connector, status: "connected", credential, created}
 *   rejects with an Error whose .result is {status: "error", reason, message}, or whose
 *   .reason is "closed" (the user closed the popup) or "timeout".
 * Where popups are blocked, the page itself goes to the consent page and comes back to
 * options.next (default: this page); the Promise then never settles.
 *
 * Options: url (an authorize URL or a headless connect link; default: the href of this
 * page's connect button for the slug, else base + slug + "/authorize/"), base (where
 * alloy_oauth's URLs are mounted, default "/oauth/"), next, params (the connector's
 * connection parameters, e.g. {shop: "acme"}: the popup asks for the others), credential
 * (the id of the account to reconnect, for a connector with several accounts per end user),
 * width (600), height (700), closedTimeout (ms, default 300000; see below). The button's href carries a start ticket
 * for this browser, so the popup goes straight to the provider; a URL without one first
 * shows a "Continue to <provider>" page (a start anyone could have linked to).
 *
 * Results arrive as a postMessage from this page's origin, or on a same-origin
 * BroadcastChannel, and carry the id of this attempt (two tabs never settle each other's).
 * This page must be on the origin of alloy_oauth's callback URL. Providers' pages often send
 * Cross-Origin-Opener-Policy, which cuts the popup off from this page: it then *looks*
 * closed while the user is still signing in. So a popup that looks closed while away at the
 * provider is given closedTimeout to report; one closed on a page of ours is taken as closed
 * at once. Calling connect() again for a slug whose popup is still open focuses that popup
 * and returns the same Promise.
 *
 * AlloyOAuth.cancel(slug) closes that popup and rejects its Promise (.reason "cancelled").
 *
 * Links and buttons with data-alloy-oauth-connect="<slug>" (the {% alloy_oauth_connect_button %}
 * tag) use it on click, dispatch "alloy-oauth:connected" / "alloy-oauth:error" events
 * (event.detail is the result or the Error) and reload the page after a connection unless a
 * listener calls event.preventDefault(). While the popup is open the button has
 * aria-busy="true". Where the page has them (the Connections page does):
 * - a ".alloy-oauth-notice" element says "Connecting to {name}…" (its data-connecting) with
 *   its ".alloy-oauth-cancel" button, then its data-connected or data-cancelled;
 * - a ".alloy-oauth-error" element shows a failure: its data-failed ("{name}", "{message}"),
 *   data-closed or data-timeout, else the Error's message.
 * ({name} is the button's data-alloy-oauth-name; the page's strings are translated.)
 */
(function (window, document) {
  "use strict";

  var CHANNEL = "alloy_oauth";
  var GRACE_MS = 1500;

  function withParam(url, name, value) {
    return url + (url.indexOf("?") === -1 ? "?" : "&") + name + "=" + encodeURIComponent(value);
  }

  // url with the given query parameters set (replacing any of the same name).
  function withParams(url, params) {
    var names = Object.keys(params || {});
    if (!names.length) { return url; }
    var parsed = new URL(url, window.location.href);
    names.forEach(function (name) { parsed.searchParams.set(name, String(params[name])); });
    return parsed.origin === window.location.origin ? parsed.pathname + parsed.search + parsed.hash
                                                     : parsed.href;
  }

  function centred(width, height) {
    var left = window.screenX + Math.max(0, (window.outerWidth - width) / 2);
    var top = window.screenY + Math.max(0, (window.outerHeight - height) / 2);
    return "popup=yes,width=" + width + ",height=" + height + ",left=" + Math.round(left) +
      ",top=" + Math.round(top);
  }

  function failure(message, reason, result) {
    var error = new Error(message);
    error.reason = reason;
    error.result = result || null;
    return error;
  }

  var inFlight = {};

  function connect(slug, options) {
    options = options || {};
    var current = inFlight[slug];
    if (current && !current.popup.closed) {
      current.popup.focus();
      return current.promise;
    }
    var base = options.base || "/oauth/";
    // The page's own button for this connector carries this browser's start ticket: with
    // it the popup goes straight to the provider; without, it asks to confirm first.
    var button = options.url ? null : document.querySelector(
      "a[data-alloy-oauth-connect=\"" + CSS.escape(String(slug)) + "\"][href]");
    var url = options.url || (button && button.getAttribute("href")) ||
              base + encodeURIComponent(slug) + "/authorize/";
    var params = {};
    Object.keys(options.params || {}).forEach(function (name) { params[name] = options.params[name]; });
    if (options.credential !== undefined && options.credential !== null) {
      params.credential = options.credential;
    }
    url = withParams(url, params);
    var next = options.next || window.location.pathname + window.location.search;
    var closedTimeout = options.closedTimeout === undefined ? 300000 : options.closedTimeout;
    var flow = newFlowId();
    var popup = window.open(withParam(withParam(url, "popup", "1"), "flow", flow),
                            "alloy_oauth_" + slug,
                            centred(options.width || 600, options.height || 700));
    if (!popup) {  // blocked: the whole page goes, and comes back to next
      // (a headless connect link, or a URL that says where to go, keeps its own next)
      window.location.assign(/[?&](link|next)=/.test(url) ? url : withParam(url, "next", next));
      return new Promise(function () {});
    }
    var cancel = null;
    var promise = new Promise(function (resolve, reject) {
      var settled = false, channel = null, watch = null, deadline = null;
      // The last same-origin address the popup was seen at: blank until a page of ours is
      // shown (the authorize URL only redirects, unless it fails); "" while it is away.
      var lastSeenOurs = "about:blank";

      function finish(ok, value) {
        if (settled) { return; }
        settled = true;
        delete inFlight[slug];
        window.removeEventListener("message", onMessage);
        if (channel) { channel.close(); }
        clearInterval(watch);
        clearTimeout(deadline);
        (ok ? resolve : reject)(value);
      }

      // (A popup cut off by a provider's COOP header cannot be closed from here: the person
      // closes it; its late result is then ignored, and the page's polling shows it.)
      cancel = function () {
        popup.close();
        finish(false, failure("Cancelled.", "cancelled"));
      };

      function receive(data) {
        if (!data || data.source !== "alloy_oauth" || data.flow !== flow) { return; }
        if (data.status === "connected") {
          finish(true, data);
        } else {
          finish(false, failure(data.message || "The connection failed.", data.reason, data));
        }
      }

      function onMessage(event) {
        if (event.origin === window.location.origin) { receive(event.data); }
      }

      window.addEventListener("message", onMessage);
      if (window.BroadcastChannel) {
        channel = new BroadcastChannel(CHANNEL);
        channel.onmessage = function (event) { receive(event.data); };
      }

      watch = setInterval(function () {
        if (!popup.closed) {
          try {
            lastSeenOurs = popup.location.href;  // throws while it is at the provider
          } catch (crossOrigin) {
            lastSeenOurs = "";
          }
          return;
        }
        clearInterval(watch);
        // Closed on a page of ours (an error page, say): really closed. Closed on the way to
        // the provider or at it: perhaps only cut off by a COOP header there; so is one that
        // left our "Continue to ..." page for the provider between two looks.
        var away = lastSeenOurs === "about:blank" || lastSeenOurs === "" || cutOff(popup);
        deadline = setTimeout(function () {
          finish(false, away
            ? failure("No answer from the connection window.", "timeout")
            : failure("The connection window was closed.", "closed"));
        }, away ? closedTimeout : GRACE_MS);
      }, 250);
    });
    inFlight[slug] = { popup: popup, promise: promise, cancel: cancel };
    return promise;
  }

  // Stop waiting for slug's connection: close its popup and reject with reason "cancelled".
  function cancelConnect(slug) {
    var current = inFlight[slug];
    if (current) { current.cancel(); }
  }

  // Whether a popup that looks closed was cut off from this page by the Cross-Origin-Opener-
  // Policy of the page it went to: reading its address then throws a SecurityError, while a
  // closed window's address can still be read (or is null).
  function cutOff(popup) {
    try {
      void popup.location.href;
      return false;
    } catch (error) {
      return error.name === "SecurityError";
    }
  }

  function newFlowId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  // The page's sentence named key (an attribute of element), {name} and {message} filled in.
  function sentence(element, key, fallback, values) {
    var text = (element && element.getAttribute("data-" + key)) || fallback;
    return text.replace(/\{(name|message)\}/g, function (all, name) { return values[name]; });
  }

  // The notice and error elements of the page, if it has them, kept saying where one is.
  function reporter(slug, name) {
    var notice = document.querySelector(".alloy-oauth-notice");
    var text = notice && notice.querySelector(".alloy-oauth-notice-text");
    var cancel = notice && notice.querySelector(".alloy-oauth-cancel");
    var box = document.querySelector(".alloy-oauth-error");
    var values = { name: name };

    function say(key, fallback, cancellable) {
      if (!text) { return; }
      text.textContent = sentence(notice, key, fallback, values);
      notice.classList.toggle("alloy-oauth-done", key === "connected");
      notice.hidden = false;
      if (cancel) {
        cancel.hidden = !cancellable;
        cancel.onclick = cancellable ? function () { cancelConnect(slug); } : null;
      }
    }

    return {
      connecting: function () {
        if (box) { box.hidden = true; }
        say("connecting", "Connecting to {name}\u2026", true);
      },
      connected: function () { say("connected", "Connected to {name}.", false); },
      failed: function (error) {
        if (error.reason === "cancelled") {
          say("cancelled", "Connecting to {name} was cancelled.", false);
          return;
        }
        if (notice) { notice.hidden = true; }
        if (!box) { return; }
        // (Only connect.js's own reasons have a sentence of the page; the server's come with
        // a message of their own.)
        var own = error.reason === "closed" || error.reason === "timeout";
        var message = (own && box.getAttribute("data-" + error.reason)) ||
                      sentence(box, "failed", "{message}", { name: name, message: error.message });
        box.textContent = message;
        box.hidden = false;
      },
    };
  }

  function onClick(event) {
    var element = event.target.closest && event.target.closest("[data-alloy-oauth-connect]");
    if (!element || event.defaultPrevented || event.button !== 0 || event.metaKey ||
        event.ctrlKey || event.shiftKey) {
      return;
    }
    event.preventDefault();
    var slug = element.getAttribute("data-alloy-oauth-connect");
    var report = reporter(slug, element.getAttribute("data-alloy-oauth-name") || slug);
    var pending = connect(slug, {
      url: element.getAttribute("href") || undefined,  // with its link or next, if any
      next: element.getAttribute("data-next") || undefined,
    });
    element.setAttribute("aria-busy", "true");
    report.connecting();
    pending.then(function (result) {
      element.removeAttribute("aria-busy");
      report.connected();
      var connected = new CustomEvent("alloy-oauth:connected",
                                      { bubbles: true, cancelable: true, detail: result });
      if (element.dispatchEvent(connected)) { window.location.reload(); }
    }, function (error) {
      element.removeAttribute("aria-busy");
      var shown = element.dispatchEvent(new CustomEvent("alloy-oauth:error",
                                                        { bubbles: true, cancelable: true,
                                                          detail: error }));
      if (shown) { report.failed(error); }
    });
  }

  window.AlloyOAuth = { connect: connect, cancel: cancelConnect };
  document.addEventListener("click", onClick);
})(window, document);
