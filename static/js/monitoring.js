// The Monitoring tab: a click on a drift heatmap cell loads that batch and column into the focus panel
// (htmx), and the upload forms show their progress and, on a refusal, the form again with its errors.
(function () {
  "use strict";

  function wireHeatmaps(root) {
    root.querySelectorAll("[data-heatmap]").forEach(function (el) {
      if (el.dataset.wired || typeof el.on !== "function") return;
      el.dataset.wired = "true";
      el.on("plotly_click", function (event) {
        var point = event.points && event.points[0];
        var url = point && point.customdata;
        if (!url || typeof htmx === "undefined") return;
        htmx.ajax("GET", url, { target: "#monitoring-focus", swap: "innerHTML" }).then(function () {
          history.pushState({}, "", url);
          var focus = document.getElementById("focus");
          if (focus) focus.scrollIntoView({ behavior: "smooth", block: "nearest" });
        });
      });
    });
  }

  function progressOf(form) {
    return form.querySelector("[data-upload-progress]");
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form[data-upload]")) return;
    var bar = progressOf(form);
    if (bar) bar.hidden = false;
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form[data-upload]") || !event.detail.lengthComputable) return;
    var bar = progressOf(form);
    if (!bar) return;
    var percent = Math.round((event.detail.loaded / event.detail.total) * 100);
    bar.setAttribute("aria-valuenow", String(percent));
    var inner = bar.querySelector(".progress-bar");
    inner.style.width = percent + "%";
    inner.textContent = percent < 100 ? percent + "%" : "Profiling…";
  });

  // A refused upload answers 400 with the page: show its form (hx-select picks it) with the errors.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (form && form.matches && form.matches("form[data-upload]") && event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form[data-upload]") || event.detail.successful) return;
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; });
  });

  // portal.js draws the charts on DOMContentLoaded and after htmx swaps; wire the heatmap once drawn.
  window.addEventListener("load", function () { wireHeatmaps(document); });
  document.addEventListener("htmx:afterSettle", function () { wireHeatmaps(document); });
  window.addEventListener("popstate", function () { window.location.reload(); });
})();
