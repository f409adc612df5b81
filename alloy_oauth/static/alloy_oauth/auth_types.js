// Admin pages of the authentication types: show only the fields that apply.
// - The connector form: the fields of the chosen authentication type (the map comes from
//   the server, connector_auth.FIELDS_BY_TYPE), and the header or the query parameter
//   fields by token placement. The server checks the same rules when the form is saved.
// - Adding a credential: the secret fields of the chosen connector's type.
(function () {
  "use strict";
  // (The credential page loads this in its head, before the form exists.)
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }

  function rows(name) {
    // A field's row, or its box when it shares a line with others.
    return document.querySelectorAll(".form-row.field-" + name + ", .fieldBox.field-" + name);
  }

  function show(name, visible) {
    rows(name).forEach(function (row) { row.hidden = !visible; });
  }

  function hideEmptyFieldsets(form) {
    form.querySelectorAll("fieldset.module").forEach(function (fieldset) {
      var all = fieldset.querySelectorAll(".form-row");
      if (!all.length) { return; }
      var visible = Array.prototype.some.call(all, function (row) { return !row.hidden; });
      fieldset.hidden = !visible;
    });
  }

  function start() {
  // The connector form.
  var map = document.getElementById("alloy-oauth-auth-type-fields");
  var type = document.getElementById("id_auth_type");
  if (map && type) {
    var fields = JSON.parse(map.textContent);
    var every = {};
    Object.keys(fields).forEach(function (kind) {
      fields[kind].forEach(function (name) { every[name] = true; });
    });
    var placement = document.getElementById("id_token_placement");
    var update = function () {
      var mine = fields[type.value] || [];
      Object.keys(every).forEach(function (name) { show(name, mine.indexOf(name) !== -1); });
      var query = placement && placement.value === "query";
      show("token_header", !query);
      show("token_template", !query);
      show("token_query_param", query);
      hideEmptyFieldsets(type.form);
    };
    type.addEventListener("change", update);
    if (placement) { placement.addEventListener("change", update); }
    update();
  }

  // Adding a credential.
  var connector = document.querySelector("select[data-alloy-oauth-secret-fields]");
  if (connector) {
    var secrets = JSON.parse(connector.getAttribute("data-alloy-oauth-secret-fields"));
    var names = {};
    Object.keys(secrets).forEach(function (kind) {
      secrets[kind].forEach(function (name) { names[name] = true; });
    });
    var updateSecrets = function () {
      var option = connector.options[connector.selectedIndex];
      var kind = option ? option.getAttribute("data-auth-type") : null;
      var mine = secrets[kind] || [];
      Object.keys(names).forEach(function (name) { show(name, mine.indexOf(name) !== -1); });
    };
    connector.addEventListener("change", updateSecrets);
    updateSecrets();
  }
  }
})();
