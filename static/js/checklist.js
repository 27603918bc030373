// Checkbox lists with a search box (the new-run form's prompt versions and models): typing filters
// the boxes by their label, groups without a match hide, and the legend counts what is ticked.
// Ticked boxes stay ticked (and posted) while hidden by the filter.
(function () {
  "use strict";

  function update(list) {
    var filter = list.querySelector("[data-checklist-filter]");
    var words = (filter ? filter.value : "").toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    list.querySelectorAll("[data-checklist-group]").forEach(function (group) {
      var groupName = (group.firstElementChild ? group.firstElementChild.textContent : "").toLowerCase();
      var visible = 0;
      group.querySelectorAll("[data-checklist-item]").forEach(function (item) {
        var text = groupName + " " + item.textContent.toLowerCase();
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        item.hidden = !match;
        if (match) visible += 1;
      });
      group.hidden = visible === 0;
      shown += visible;
    });
    var empty = list.querySelector("[data-checklist-empty]");
    if (empty) empty.hidden = shown > 0 || words.length === 0;
    var count = list.querySelector("[data-checklist-count]");
    if (count) {
      var ticked = list.querySelectorAll("input[type=checkbox]:checked").length;
      count.textContent = ticked ? "(" + ticked + " chosen)" : "";
    }
  }

  function wire(root) {
    root.querySelectorAll("[data-checklist]").forEach(function (list) {
      if (list.dataset.checklistReady) return;
      list.dataset.checklistReady = "true";
      var filter = list.querySelector("[data-checklist-filter]");
      if (filter) {
        filter.addEventListener("input", function () { update(list); });
        // Enter in the filter must not submit the form.
        filter.addEventListener("keydown", function (event) {
          if (event.key === "Enter") event.preventDefault();
        });
      }
      list.addEventListener("change", function () { update(list); });
      update(list);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:afterSettle", function (event) { wire(event.target); });
})();
