// Small behaviours for the drawers: the browser's time zone as the default, and repeatable rows
// (variables, subject variants). Everything else is htmx.
(function () {
  "use strict";
  function defaultTimeZone(root) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    root.querySelectorAll("select[data-browser-zone]").forEach(function (select) {
      if (select.dataset.zoneApplied) return;
      select.dataset.zoneApplied = "1";
      for (var i = 0; i < select.options.length; i++) {
        if (select.options[i].value === zone) { select.selectedIndex = i; break; }
      }
    });
  }
  document.addEventListener("click", function (event) {
    var add = event.target.closest("[data-add-row]");
    if (add) {
      var list = document.getElementById(add.dataset.addRow);
      var max = parseInt(list.dataset.max || "100", 10);
      if (list.children.length >= max) return;
      var template = document.getElementById(list.dataset.template);
      list.appendChild(template.content.cloneNode(true));
      if (list.children.length >= max) add.disabled = true;
      return;
    }
    var remove = event.target.closest("[data-remove-row]");
    if (remove) {
      var row = remove.closest(".row-inline");
      var parent = row.parentElement;
      row.remove();
      var adder = document.querySelector('[data-add-row="' + parent.id + '"]');
      if (adder) adder.disabled = false;
    }
  });
  // htmx swaps nothing for a 4xx/5xx answer (a paste over the form's 1 MB field limit, an
  // upload over the import limit, an expired CSRF token): say so instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var message = "The request failed (HTTP " + xhr.status + ").";
    try {
      var body = JSON.parse(xhr.responseText);
      var said = (body.error && body.error.message) || body.message || body.detail;
      if (typeof said === "string" && said) message = said;
    } catch (ignored) { /* not JSON: keep the status line */ }
    window.alert(message);
  });
  document.addEventListener("DOMContentLoaded", function () { defaultTimeZone(document); });
  document.addEventListener("htmx:afterSwap", function (event) { defaultTimeZone(event.target); });
})();
