// The supervisor dashboard's escalation-rate chart (Chart.js, vendored in static/vendor/chart.js).
// It starts from the figures the page was rendered with (a json_script tag) and, when an event
// that moves the rate arrives, reads the escalation-rate API again and redraws in place, with
// the 7- and 30-day figures and the day-by-day table beside it. Everything else on the page
// refreshes itself as live sections (live-sections.js).
(function () {
  "use strict";
  const MOVES_THE_RATE = new Set([
    "escalation.raised",
    "escalation.resolved",
    "approval.requested",
    "approval.decided",
  ]);
  const DEBOUNCE_MS = 300;
  const canvas = document.getElementById("rate-chart");
  const source = document.getElementById("rate-chart-data");
  if (!canvas || !source) return;
  const words = canvas.dataset.words || "";
  let chart = null;
  let timer = null;

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, (all, name) =>
      values[name] === undefined ? all : String(values[name]),
    );
  }

  function points(series) {
    return series.map((point) => ({
      date: point.date,
      rate: point.rate === null ? null : Number(point.rate),
      complaints: point.complaints,
      escalated: point.escalated,
    }));
  }

  function datasets(series, threshold) {
    const data = points(series);
    return [
      {
        label: canvas.dataset.labelRate,
        data,
        parsing: { xAxisKey: "date", yAxisKey: "rate" },
        borderColor: "#1b6ac9",
        backgroundColor: "#1b6ac9",
        spanGaps: true,
        tension: 0.2,
      },
      {
        label: canvas.dataset.labelTarget,
        data: data.map((point) => ({ date: point.date, rate: Number(threshold) })),
        parsing: { xAxisKey: "date", yAxisKey: "rate" },
        borderColor: "#d92d20",
        backgroundColor: "#d92d20",
        borderDash: [6, 4],
        pointRadius: 0,
      },
    ];
  }

  function draw(figures) {
    if (typeof window.Chart === "undefined") return; // the table below says it all
    chart = new window.Chart(canvas, {
      type: "line",
      data: {
        labels: figures.series.map((point) => point.date),
        datasets: datasets(figures.series, figures.threshold),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { autoSkip: true, maxRotation: 0 } },
          y: { beginAtZero: true, ticks: { callback: (value) => `${value}%` } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              footer: (items) => {
                const point = items.length ? items[0].raw : null;
                return point && point.complaints !== undefined ? fill(words, point) : "";
              },
            },
          },
        },
      },
    });
  }

  function redraw(figures) {
    if (!chart) return;
    chart.data.labels = figures.series.map((point) => point.date);
    const [rate, target] = datasets(figures.series, figures.threshold);
    chart.data.datasets[0].data = rate.data;
    chart.data.datasets[1].data = target.data;
    chart.update();
  }

  function showFigure(key, figures) {
    const box = document.querySelector(`[data-rate-figure="${key}"]`);
    if (!box || !figures) return;
    box.querySelector('[data-part="rate"]').textContent =
      figures.rate === null ? "—" : `${figures.rate}%`;
    box.querySelector('[data-part="words"]').textContent = fill(words, figures);
    box.querySelector('[data-part="above"]').hidden = !figures.above;
    box.dataset.above = figures.above ? "true" : "false";
  }

  function showTable(series) {
    const body = document.querySelector("#rate-series tbody");
    if (!body) return;
    body.replaceChildren(
      ...series.map((point) => {
        const row = document.createElement("tr");
        const cells = [
          point.date,
          point.complaints,
          point.escalated,
          point.rate === null ? "—" : `${point.rate}%`,
        ];
        cells.forEach((text) => {
          const cell = document.createElement("td");
          cell.textContent = String(text);
          row.appendChild(cell);
        });
        return row;
      }),
    );
  }

  async function reload() {
    timer = null;
    try {
      const response = await fetch(canvas.dataset.api, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      // {rate, rate_30_days, series, groups} (escalation/metrics_api.py).
      const figures = await response.json();
      redraw({ series: figures.series, threshold: figures.rate.threshold });
      showFigure("week", figures.rate);
      showFigure("month", figures.rate_30_days);
      showTable(figures.series);
    } catch (error) {
      // A missed update: the next event (or a reload) brings the figures back in line.
    }
  }

  draw(JSON.parse(source.textContent));
  document.addEventListener("helpdesk:event", (event) => {
    if (!MOVES_THE_RATE.has(event.detail.event)) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(reload, DEBOUNCE_MS);
  });
})();
