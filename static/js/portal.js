// OpsPortal page behaviour: draws Plotly charts from JSON embedded in the page
// (no inline scripts), copies secrets to the clipboard, and redraws after htmx swaps.
(function () {
  "use strict";

  function drawCharts(root) {
    if (typeof Plotly === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var source = document.getElementById(el.dataset.chart);
      if (!source) return;
      try {
        var fig = JSON.parse(source.textContent);
        Plotly.react(el, fig.data || [], fig.layout || {}, { responsive: true, displaylogo: false });
        el.dataset.rendered = "true";
      } catch (error) {
        // One broken chart must not keep the others from being drawn.
        el.dataset.rendered = "error";
        console.error("chart " + el.dataset.chart + ": " + error);
      }
    });
  }

  function wireCopyButtons(root) {
    root.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var input = document.querySelector(button.dataset.copy);
        if (!input) return;
        input.select();
        if (navigator.clipboard) navigator.clipboard.writeText(input.value);
        button.textContent = "Copied";
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    wireCopyButtons(document);
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    drawCharts(event.target);
    wireCopyButtons(event.target);
  });
})();
