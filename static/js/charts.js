/* Draws every chart on the page from the figure JSON the server put in a json_script
 * element (clinic/charts.py). The one place charts are rendered: no inline scripts. */
(function () {
  "use strict";
  function draw(element) {
    var source = document.getElementById(element.dataset.chart);
    if (!source || !window.Plotly) return;
    var figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(element, figure.data || [], figure.layout || {}, {
      responsive: true,
      displaylogo: false,
      // Never offer to send a chart (patient data) to Plotly's cloud.
      showSendToCloud: false,
      showEditInChartStudio: false,
      showLink: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(draw);
  });
})();
