// Metric explorer: draws the chart, and reloads its data at the new window's resolution when one zooms
// (drag, double-click back, or a range button); the URL follows, so the view stays shareable.
// The picker's selects ask for its htmx partial; at most data-overlay series can be ticked.
(function () {
  "use strict";

  var chart = null;
  var loaded = null; // [start, end] in ms of the data on the chart
  var initial = null;
  var loads = 0;
  var timer = null;
  var CONFIG = { responsive: true, displaylogo: false };

  // Plotly's dates are naive (UTC here): "2024-05-01 10:00:00.5", "2024-05-01", or what the server sent.
  function toMs(value) {
    if (typeof value === "number") return value;
    var text = String(value).trim().replace(" ", "T");
    if (text.indexOf("T") < 0) text += "T00:00:00";
    if (!/(Z|[+-]\d\d:?\d\d)$/.test(text)) text += "Z";
    return Date.parse(text);
  }

  function utc(ms) {
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
  }

  function draw(figure) {
    Plotly.react(chart, figure.data || [], figure.layout || {}, CONFIG);
    var range = (figure.layout && figure.layout.xaxis && figure.layout.xaxis.range) || [];
    loaded = [toMs(range[0]), toMs(range[1])];
    chart.dataset.rendered = "true";
    chart.dataset.loads = String(loads);
    chart.dataset.traces = String((figure.data || []).length);
    chart.dataset.start = String(Math.floor(loaded[0] / 1000));
    chart.dataset.end = String(Math.floor(loaded[1] / 1000));
    var label = document.getElementById("explorer-window");
    if (label) label.textContent = utc(loaded[0]) + " – " + utc(loaded[1]) + " UTC";
  }

  function status(text) {
    var el = document.getElementById("explorer-status");
    if (el) el.textContent = text;
  }

  // The window's start and end become the form's (so Show keeps them) and the URL's.
  function keepWindow(params) {
    var form = document.getElementById("explore-form");
    var select = document.getElementById("explorer-range");
    ["start", "end"].forEach(function (name) {
      var input = document.querySelector("input[form=explore-form][name=" + name + "]");
      if (!input) {
        input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.setAttribute("form", "explore-form");
        input.dataset.window = "";
        (select ? select.parentNode : form).appendChild(input);
      }
      input.value = params.get(name);
    });
    if (select) {
      var custom = select.querySelector("option[value='']");
      if (!custom) {
        custom = document.createElement("option");
        custom.value = "";
        custom.textContent = "custom";
        select.insertBefore(custom, select.firstChild);
      }
      custom.selected = true;
    }
    var shown = new URLSearchParams(params);
    shown.delete("points");
    history.replaceState(null, "", "?" + shown.toString());
  }

  function reload(start, end) {
    var params = new URLSearchParams(window.location.search);
    params.delete("range");
    params.set("start", String(Math.round(start / 1000)));
    params.set("end", String(Math.round(end / 1000)));
    var width = Math.round(chart.clientWidth || 600);
    params.set("points", String(Math.max(20, Math.min(2000, width))));
    status("Loading…");
    chart.dataset.loading = "true";
    fetch(chart.dataset.source + "?" + params.toString(), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (answer) {
        chart.dataset.loading = "false";
        if (!answer.ok) {
          status(answer.body.error || "The data could not be read.");
          return;
        }
        loads += 1;
        draw(answer.body.figure);
        status(answer.body.empty ? "No samples in this range." : "");
        keepWindow(params);
      })
      .catch(function (error) {
        chart.dataset.loading = "false";
        status("The data could not be read: " + error);
      });
  }

  function onRelayout(event) {
    var start;
    var end;
    if (event["xaxis.autorange"]) {
      start = initial[0];
      end = initial[1];
    } else if (event["xaxis.range"]) {
      start = toMs(event["xaxis.range"][0]);
      end = toMs(event["xaxis.range"][1]);
    } else if (event["xaxis.range[0]"] !== undefined) {
      start = toMs(event["xaxis.range[0]"]);
      end = toMs(event["xaxis.range[1]"]);
    } else {
      return;
    }
    if (!isFinite(start) || !isFinite(end) || end <= start) return;
    if (loaded && Math.abs(start - loaded[0]) < 1000 && Math.abs(end - loaded[1]) < 1000) return;
    clearTimeout(timer);
    timer = setTimeout(function () { reload(start, end); }, 150);
  }

  function limitTicks(form) {
    var limit = parseInt(form.dataset.overlay || "20", 10);
    var boxes = form.querySelectorAll("input[type=checkbox][name=series]");
    var ticked = form.querySelectorAll("input[type=checkbox][name=series]:checked").length;
    boxes.forEach(function (box) {
      box.disabled = !box.checked && ticked >= limit;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    chart = document.getElementById("explorer-chart");
    if (chart && typeof Plotly !== "undefined") {
      var source = document.getElementById(chart.dataset.figure);
      try {
        draw(JSON.parse(source.textContent));
        initial = loaded.slice();
        chart.on("plotly_relayout", onRelayout);
      } catch (error) {
        chart.dataset.rendered = "error";
        console.error("explorer chart: " + error);
      }
    }
    var range = document.getElementById("explorer-range");
    if (range) {
      range.addEventListener("change", function () {
        document.querySelectorAll("input[form=explore-form][data-window]").forEach(function (el) { el.remove(); });
        if (range.value) document.getElementById("explore-form").requestSubmit();
      });
    }
    var fn = document.getElementById("explorer-fn");
    if (fn) fn.addEventListener("change", function () { document.getElementById("explore-form").requestSubmit(); });
    var form = document.getElementById("explore-form");
    if (form) limitTicks(form);
  });

  document.addEventListener("change", function (event) {
    if (!event.target.closest) return;
    var form = event.target.closest("#explore-form");
    if (form && event.target.name === "series") limitTicks(form);
    // A metric or label filter chosen: the picker's partial is read again (htmx, on its container, which stays).
    var picker = event.target.closest("#picker-form");
    if (picker && typeof htmx !== "undefined") htmx.trigger("#metric-picker", "picker-change");
  });
  // "Find series": the picker for the selector typed in the box.
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("#picker-find")) return;
    var form = document.getElementById("explore-form");
    var params = new URLSearchParams(new FormData(form));
    params.set("from", "q");
    var url = document.getElementById("metric-picker").getAttribute("hx-get");
    htmx.ajax("GET", url + "?" + params.toString(), { target: "#metric-picker" });
  });
  document.addEventListener("htmx:afterSettle", function () {
    var form = document.getElementById("explore-form");
    if (form) limitTicks(form);
  });
})();
