// Check pages: the form shows the chosen kind's options only; Test now's refusal (a 400) is shown in place;
// deleting asks first.
(function () {
  "use strict";

  function showKind(form) {
    var select = form.querySelector("[name=kind]");
    var kind = select ? select.value : form.dataset.kind;
    form.querySelectorAll(".kind-options").forEach(function (fieldset) {
      fieldset.hidden = fieldset.dataset.kinds.split(" ").indexOf(kind) < 0;
    });
    form.querySelectorAll(".not-heartbeat").forEach(function (el) {
      el.hidden = kind === "heartbeat";
    });
    var test = form.querySelector("#test-now");
    if (test) test.hidden = kind === "heartbeat";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("check-form");
    if (form) {
      showKind(form);
      var select = form.querySelector("[name=kind]");
      if (select) select.addEventListener("change", function () { showKind(form); });
    }
    document.querySelectorAll("form[data-confirm]").forEach(function (el) {
      el.addEventListener("submit", function (event) {
        if (!window.confirm(el.dataset.confirm)) event.preventDefault();
      });
    });
  });

  // A test that was refused answers 400 with the reason: show it like a result.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "test-result" && event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
