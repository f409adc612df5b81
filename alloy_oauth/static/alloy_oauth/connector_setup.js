// Connector page: the preset picker's recipe link follows the provider picked in the list
// (before "Fill the form" reloads the page), and "Fill from issuer" asks the admin's
// discovery endpoint (a CSRF-checked POST) for the provider's settings and fills the form's
// fields with them; nothing is saved until the operator presses Save.
(function () {
  "use strict";

  var picker = document.getElementById("alloy-oauth-preset");
  var recipe = document.getElementById("alloy-oauth-preset-recipe");
  if (picker && recipe) {
    picker.addEventListener("change", function () {
      // The anchor is made from the slug as the server makes it (presets.RECIPE_ANCHOR_PREFIX).
      var target = recipe.getAttribute("data-base") +
        (picker.value ? "#" + recipe.getAttribute("data-anchor-prefix") + picker.value : "");
      if (recipe.tagName === "A") {
        recipe.href = target;
      } else {
        recipe.textContent = target;
      }
      document.getElementById("alloy-oauth-preset-recipe-help").hidden = !picker.value;
    });
  }

  var button = document.getElementById("alloy-oauth-discover");
  if (!button) { return; }
  var input = document.getElementById("alloy-oauth-discover-url");
  var list = document.getElementById("alloy-oauth-discover-result");

  function show(lines) {
    list.innerHTML = "";
    lines.forEach(function (line) {
      var item = document.createElement("li");
      var kind = line.note ? "note" : line.ok ? "ok" : "failed";
      item.className = "alloy-oauth-" + kind;
      item.textContent = { note: "\u2139 ", ok: "\u2714 ", failed: "\u2718 " }[kind] + line.text;
      list.appendChild(item);
    });
  }

  function fill(fields) {
    var filled = [];
    Object.keys(fields).forEach(function (name) {
      var field = document.getElementById("id_" + name);
      if (!field) { return; }
      if (field.type === "checkbox") {
        field.checked = Boolean(fields[name]);
      } else {
        field.value = fields[name];
      }
      field.dispatchEvent(new Event("change", { bubbles: true }));
      var section = field.closest("details");  // a collapsed fieldset: show what changed
      if (section) { section.open = true; }
      var label = document.querySelector("label[for='id_" + name + "']");
      filled.push(label ? label.textContent.replace(/:$/, "") : name);
    });
    return filled;
  }

  function discover() {
    var token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
    button.disabled = true;
    show([{ ok: true, text: button.getAttribute("data-running") || "Looking for the discovery document\u2026" }]);
    fetch(button.getAttribute("data-url"), {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": token },
      body: new URLSearchParams({ url: input.value }),
    }).then(function (response) {
      return response.json().catch(function () { throw new Error("HTTP " + response.status); });
    }).then(function (result) {
      if (!result.ok) {
        show([{ ok: false, text: result.error }]);
        return;
      }
      var filled = fill(result.fields);
      show([{ ok: true, text: "Filled from " + result.document_url + ": " + filled.join(", ") + "." }]
        .concat(result.notes.map(function (note) { return { note: true, text: note }; })));
    }).catch(function (error) {
      show([{ ok: false, text: String(error) }]);
    }).then(function () { button.disabled = false; });
  }

  button.addEventListener("click", discover);
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); discover(); }  // not the page's Save
  });
})();
