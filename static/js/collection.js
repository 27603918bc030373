// Metric collection pages: the auth fields follow the chosen auth; a refused Test (a 400) is shown in place;
// deleting asks first.
(function () {
  "use strict";

  function showAuth(form) {
    var select = form.querySelector("[name=auth]");
    if (!select) return;
    form.querySelectorAll(".auth-basic").forEach(function (el) { el.hidden = select.value !== "basic"; });
    form.querySelectorAll(".auth-secret").forEach(function (el) { el.hidden = select.value === "none"; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.collect-form").forEach(function (form) {
      showAuth(form);
      var select = form.querySelector("[name=auth]");
      if (select) select.addEventListener("change", function () { showAuth(form); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (el) {
      el.addEventListener("submit", function (event) {
        if (!window.confirm(el.dataset.confirm)) event.preventDefault();
      });
    });
  });

  // A refused test or preview answers 400 with the reason: show it like a result.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && (target.id === "test-result" || target.id === "selector-preview") && event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
