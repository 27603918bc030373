// Threshold rule pages: the form's live preview answers 400 for a selector that does not parse (the parser's
// message goes under the field); show it like any other preview.
(function () {
  "use strict";

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "threshold-preview" && event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // The selector field is marked invalid while the parser refuses it.
  document.addEventListener("htmx:afterSettle", function () {
    var input = document.getElementById("id_selector");
    var problem = document.getElementById("selector-problem");
    if (input && problem) input.classList.toggle("is-invalid", problem.textContent.trim() !== "");
  });
})();
