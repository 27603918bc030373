// Runbook pages: a ready-made step is inserted at the end of the steps (JSON) of the form; deleting asks first.
(function () {
  "use strict";

  function insertStep(key) {
    var textarea = document.querySelector("#runbook-form [name=steps]");
    var source = document.getElementById(key);
    if (!textarea || !source) return;
    var step = JSON.parse(JSON.parse(source.textContent));
    var steps;
    try {
      steps = JSON.parse(textarea.value.trim() || "[]");
    } catch (error) {
      window.alert("The steps are not valid JSON yet (" + error.message + "); fix them before inserting.");
      return;
    }
    if (!Array.isArray(steps)) steps = [steps];
    steps.push(step);
    textarea.value = JSON.stringify(steps, null, 2);
    textarea.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".insert-step").forEach(function (button) {
      button.addEventListener("click", function () { insertStep(button.dataset.template); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (el) {
      el.addEventListener("submit", function (event) {
        if (!window.confirm(el.dataset.confirm)) event.preventDefault();
      });
    });
  });
})();
