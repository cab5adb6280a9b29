// The calculator page's plumbing: the API client, the inputs and the address bar, API errors
// next to the fields they name, number formats, and the tables and charts the views draw.
// Every number shown comes from the service's public API; nothing here computes an estimate.

/** A non-2xx answer; `problem` is its application/problem+json body (RFC 9457). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** GET `path`, or POST `body` as JSON; the answer's JSON, or an ApiError. Paths are relative
 * ("v1/..."), so the page also works behind a proxy that mounts the service under a prefix. */
export async function api(path, body) {
  const init = body === undefined
    ? { headers: { accept: "application/json" } }
    : { method: "POST", headers: { "content-type": "application/json", accept: "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Every item of a paginated catalog list (`{"items": [...], "total": n}`). */
export async function listAll(path) {
  const items = [];
  const sep = path.includes("?") ? "&" : "?";
  for (;;) {
    const page = await api(`${path}${sep}limit=100&offset=${items.length}`);
    items.push(...page.items);
    if (page.items.length === 0 || items.length >= page.total) return items;
  }
}

// --- inputs -----------------------------------------------------------------------------------

/** The page's inputs: every control with a `data-api` path (its field in the request body). */
export function controls() {
  return [...document.querySelectorAll("[data-api]")];
}

function control(name) {
  return document.querySelector(`[data-api][name="${name}"]`);
}

/** A control's value as the API takes it. A number field that does not hold a number is sent
 * as typed, so that the API's 422 names the field and the reason. */
export function readValue(el) {
  if (el.type === "checkbox") return el.checked;
  if (el.type === "number" || el.dataset.kind === "int") {
    const raw = el.value.trim();
    const n = Number(raw);
    return raw !== "" && Number.isFinite(n) ? n : raw;
  }
  return el.value;
}

/** Set a control from a string (an address-bar parameter, or a suggested change). */
export function setValue(el, value) {
  const text = String(value);
  if (el.type === "checkbox") {
    el.checked = text === "true";
  } else if (el.tagName === "SELECT" && ![...el.options].some((o) => o.value === text)) {
    el.add(new Option(`${text} (not in the catalog)`, text)); // the API's 422 will say why
    el.value = text;
  } else {
    el.value = text;
  }
}

/** The request body for the named controls, with `overrides` (name -> value) applied;
 * dotted `data-api` paths nest (`parallelism.tp`), and `model` is a preset id. */
export function buildRequest(names, overrides = {}) {
  const body = {};
  for (const name of names) {
    const el = control(name);
    let value = name in overrides ? overrides[name] : readValue(el);
    if (name === "model") value = { preset: value };
    const path = el.dataset.api.split(".");
    let node = body;
    for (const key of path.slice(0, -1)) node = node[key] ??= {};
    node[path.at(-1)] = value;
  }
  return body;
}

/** Put every input and the open view in the address bar, so the page's address is the scenario. */
export function writeUrl(view) {
  const params = new URLSearchParams({ view });
  for (const el of controls()) params.set(el.name, el.type === "checkbox" ? String(el.checked) : el.value);
  history.replaceState(null, "", `?${params}`);
}

/** Set the inputs the address names; returns the view it names (or null). */
export function readUrl() {
  const params = new URLSearchParams(location.search);
  for (const el of controls()) if (params.has(el.name)) setValue(el, params.get(el.name));
  return params.get("view");
}

// --- errors next to their fields --------------------------------------------------------------

export function clearErrors() {
  for (const box of document.querySelectorAll(".field-error")) {
    box.hidden = true;
    box.textContent = "";
  }
  for (const el of document.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("aria-describedby");
  }
}

/** The control a problem's `loc` names: the longest `data-api` prefix of the path
 * (`model.n_layers` -> the model select; `parallelism.tp` -> the tp field). Two views may send
 * one API field from inputs of their own (the serve view's GPU list and the scenario's GPU
 * picker are both `gpu`): the view's own input (inside `scope`) wins over the others. */
function fieldFor(path, scope) {
  for (let p = path; p; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") {
    const selector = `[data-api="${CSS.escape(p)}"]`;
    const el = scope?.querySelector(selector) ?? document.querySelector(selector);
    if (el) return el;
  }
  return null;
}

/** Show an error: each field a 422 names gets its message beside it; the rest goes to the
 * view's status line. */
export function showError(error, status) {
  if (!(error instanceof ApiError)) {
    status.textContent = `The request failed: ${error.message}`;
    return;
  }
  const unplaced = [];
  const fields = error.problem?.errors ?? [];
  for (const item of fields) {
    const path = (item.loc ?? []).filter((part) => part !== "body").join(".");
    const el = fieldFor(path, status.closest('[role="tabpanel"]'));
    // a field on another (hidden) view would hide its message: the status line carries it instead
    const box = el && !el.closest("[hidden]") && document.getElementById(`${el.id}-error`);
    if (!box) {
      unplaced.push(`${path || "request"}: ${item.msg}`);
      continue;
    }
    box.textContent = box.textContent ? `${box.textContent} ${item.msg}` : item.msg;
    box.hidden = false;
    el.setAttribute("aria-invalid", "true");
    el.setAttribute("aria-describedby", box.id);
  }
  if (unplaced.length) status.textContent = unplaced.join("; ");
  else if (fields.length) status.textContent = "The service could not answer: see the field marked in red.";
  else status.textContent = error.problem?.detail ?? error.message;
}

// --- formats ------------------------------------------------------------------------------------

export const GiB = 2 ** 30;
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 3 });
const usd = new Intl.NumberFormat("en", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
const usdCents = new Intl.NumberFormat("en", { style: "currency", currency: "USD", maximumFractionDigits: 4 });

export const fmt = {
  gib: (bytes) => (bytes == null ? "—" : `${(bytes / GiB).toFixed(1)} GiB`),
  count: (n) => (n == null ? "—" : compact.format(n)),
  usd: (x) => (x == null ? "—" : usd.format(x)),
  usdPerHour: (x) => (x == null ? "—" : `${usdCents.format(x)}/GPU-h`),
  price: (x) => (x == null ? "—" : usdCents.format(x)),
  hours: (h) => (h == null ? "—" : h >= 48 ? `${(h / 24).toFixed(1)} days` : `${h.toFixed(1)} h`),
  seconds: (s) => (s == null ? "—" : `${s.toFixed(3)} s`),
  percent: (x) => (x == null ? "—" : `${(100 * x).toFixed(1)}%`),
  loss: (x) => (x == null ? "—" : x.toFixed(4)),
  flops: (x) => (x == null ? "—" : x.toExponential(3)),
};

// --- the accessible table each chart is drawn from ----------------------------------------------

/** `weights_bytes` -> `weightsBytes`: an API field's name as a `dataset` key (`data-weights-bytes`). */
function camelCase(name) {
  return name.replace(/_(.)/g, (_, c) => c.toUpperCase());
}

/** Render `rows` as a table: `columns` are `{label, value(row) -> text}`; each row's `data`
 * (name -> raw number or string; API field names kept) becomes `data-*` attributes, `title` its hover text and
 * `className` its class. The chart is drawn from the same rows. */
export function renderTable(container, caption, columns, rows) {
  const table = document.createElement("table");
  table.createCaption().textContent = caption;
  const head = table.createTHead().insertRow();
  for (const column of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = column.label;
    head.append(th);
  }
  const tbody = table.createTBody();
  for (const row of rows) {
    const tr = tbody.insertRow();
    for (const [name, value] of Object.entries(row.data ?? {})) if (value != null) tr.dataset[camelCase(name)] = String(value);
    if (row.title) tr.title = row.title;
    if (row.className) tr.className = row.className;
    columns.forEach((column, i) => {
      const cell = i === 0 ? document.createElement("th") : tr.insertCell();
      if (i === 0) {
        cell.scope = "row";
        tr.append(cell);
      }
      cell.textContent = column.value(row);
    });
  }
  container.replaceChildren(table);
}

let chartLoading = null;

/** Run Chart.js (index.html preloads it) and settle once it has run. The page calls this just
 * after its first view has sent its request, so that parsing the library overlaps the answer. */
export function loadChart() {
  chartLoading ??= new Promise((resolve, reject) => {
    if (window.Chart) return resolve();
    const script = document.createElement("script");
    script.src = document.getElementById("chart-js").href;
    script.addEventListener("load", () => resolve());
    script.addEventListener("error", () => {
      chartLoading = null; // tried again by the next view drawn
      reject(new Error("the charting library did not load"));
    });
    document.head.append(script);
  });
  return chartLoading;
}

/** Draw (or redraw) the chart on `canvas`; its labels and datasets are also written to the
 * canvas's `data-series` attribute, so what is drawn can be read back. */
export function drawChart(canvas, config) {
  Chart.getChart(canvas)?.destroy();
  config.options = { animation: false, responsive: true, maintainAspectRatio: false, ...config.options };
  const chart = new Chart(canvas, config);
  canvas.dataset.series = JSON.stringify({
    labels: chart.data.labels ?? [],
    datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
  });
  return chart;
}

/** A Chart.js plugin drawing a vertical line at `options.plugins.limitLine.value` (x scale). */
export const limitLine = {
  id: "limitLine",
  afterDatasetsDraw(chart, _args, options) {
    if (options.value == null) return;
    const { ctx, chartArea, scales } = chart;
    const x = scales.x.getPixelForValue(options.value);
    ctx.save();
    ctx.strokeStyle = options.color ?? "#b3261e";
    ctx.lineWidth = 2;
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(x, chartArea.top);
    ctx.lineTo(x, chartArea.bottom);
    ctx.stroke();
    ctx.fillStyle = options.color ?? "#b3261e";
    ctx.textAlign = x > chartArea.right - 120 ? "right" : "left";
    ctx.fillText(options.label ?? "", x + (ctx.textAlign === "right" ? -4 : 4), chartArea.top + 12);
    ctx.restore();
  },
};
