// Capacity forecast form: show the limit fields of the chosen limit kind only (all show without script).
(function () {
  "use strict";

  function update(form) {
    var chosen = form.querySelector("input[name=limit_kind]:checked");
    var kind = chosen ? chosen.value : "";
    form.querySelectorAll("[data-limit-for]").forEach(function (el) {
      el.hidden = el.dataset.limitFor.split(" ").indexOf(kind) === -1;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("forecast-form");
    if (!form) return;
    form.querySelectorAll("input[name=limit_kind]").forEach(function (input) {
      input.addEventListener("change", function () { update(form); });
    });
    update(form);
  });
})();
