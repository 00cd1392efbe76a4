/* The clinic's one script: small enhancements on top of pages that work without it.
 * No inline scripts anywhere: data reaches this file through json_script elements and
 * data-* attributes, so a strict Content-Security-Policy holds. */
(function () {
  "use strict";

  /* PHQ-9 form: show the running total and severity band as the items are answered.
   * The bands come from the server (patients.phq9.SEVERITY_BANDS), never from here. */
  function setUpPhq9(form) {
    var bandsElement = document.getElementById(form.dataset.bands);
    if (!bandsElement) return;
    var bands = JSON.parse(bandsElement.textContent);
    var items = JSON.parse(form.dataset.items);
    var totalOut = form.querySelector("[data-phq9-total]");
    var bandOut = form.querySelector("[data-phq9-band]");
    var answeredOut = form.querySelector("[data-phq9-answered]");
    var safety = form.querySelector("[data-phq9-safety]");

    function update() {
      var total = 0, answered = 0, item9 = 0;
      items.forEach(function (name) {
        var checked = form.querySelector('input[name="' + name + '"]:checked');
        if (checked) {
          answered += 1;
          total += Number(checked.value);
          if (name === "item_9") item9 = Number(checked.value);
        }
      });
      totalOut.textContent = String(total);
      answeredOut.textContent = answered + " of " + items.length + " answered";
      var band = bands.find(function (b) { return total >= b.low && total <= b.high; });
      bandOut.textContent = answered === items.length && band ? band.label : "—";
      bandOut.className = "badge" + (answered === items.length && band ? " badge--" + band.value : " badge--muted");
      if (safety) safety.hidden = item9 === 0;
    }
    form.addEventListener("change", update);
    update();
  }

  /* Buttons that need a second thought: <button data-confirm="Sign and lock?">. */
  function setUpConfirm(button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-phq9-form]").forEach(setUpPhq9);
    document.querySelectorAll("[data-confirm]").forEach(setUpConfirm);
  });
})();
