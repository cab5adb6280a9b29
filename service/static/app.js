// The calculator page: six views over the public API, one open at a time. Each view builds
// its request from the inputs, asks the API, then draws a chart and the table it is drawn from.
// A view's section carries `data-state` (idle, loading, ready, error) and `data-request` (the
// body it sent), so what is shown can be checked against the API.

import {
  api, buildRequest, clearErrors, controls, drawChart, fmt, GiB, limitLine, listAll, loadChart, readUrl, readValue, renderTable,
  setValue, showError, writeUrl,
} from "./lib.js";

const COLORS = ["#0b5cad", "#e8710a", "#1a7f37", "#8250df", "#b3261e", "#0598bc", "#bf8700", "#57606a", "#d63384"];

// --- Will it fit? ---------------------------------------------------------------------------

const FIT_FIELDS = [
  "model", "gpu", "seq_len", "finetune", "lora_r", "precision", "optimizer", "micro_batch_size", "recompute", "flash_attention",
  "dp", "tp", "pp", "zero_stage", "sequence_parallel", "offload_optimizer",
];
const MEMORY_PARTS = [
  ["weights_bytes", "weights"], ["gradients_bytes", "gradients"], ["optimizer_bytes", "optimizer states"],
  ["activations_bytes", "activations"], ["cuda_context_bytes", "CUDA context"],
];

/** Changes to try when a setup does not fit, each a patch of input names -> values (or null when
 * it does not apply). They are asked of the API like the setup itself; the ones that fit are shown. */
function memoryChanges(v) {
  const singles = [
    ["LoRA (frozen base, rank-r adapters)", v.finetune === "full" && { finetune: "lora" }],
    ["QLoRA (4-bit base)", v.finetune !== "qlora" && { finetune: "qlora" }],
    ["fused attention", !v.flash_attention && { flash_attention: true }],
    ["selective recompute", v.recompute === "none" && { recompute: "selective" }],
    ["full recompute", v.recompute !== "full" && { recompute: "full" }],
    ["micro-batch 1", v.micro_batch_size > 1 && { micro_batch_size: 1 }],
    // under a pipeline ZeRO-3 keeps the stage gathered and its gradients whole in fp32: ZeRO-2 holds the least
    ...(v.pp > 1 ? [["ZeRO stage 2", v.dp > 1 && v.zero_stage !== 2 && { zero_stage: 2 }]]
      : [["ZeRO stage 3", v.dp > 1 && v.zero_stage < 3 && { zero_stage: 3 }]]),
    ["8-bit AdamW", v.optimizer === "adamw" && { optimizer: "adamw_8bit" }],
    ["optimizer on the CPU", !v.offload_optimizer && { offload_optimizer: true }],
    [`tp ${v.tp} → ${2 * v.tp} (${v.dp * 2 * v.tp * v.pp} GPUs)`, { tp: 2 * v.tp, sequence_parallel: true }],
    [`pp ${v.pp} → ${2 * v.pp} (${v.dp * v.tp * 2 * v.pp} GPUs)`, { pp: 2 * v.pp }],
  ];
  // the memory savers not already on, all at once, then with more tensor parallelism, for setups
  // that no single change saves
  const savers = [
    ["fused attention", "flash_attention", true], ["full recompute", "recompute", "full"], ["micro-batch 1", "micro_batch_size", 1],
    ...(v.dp > 1 ? [v.pp > 1 ? ["ZeRO-2", "zero_stage", 2] : ["ZeRO-3", "zero_stage", 3]] : []),
  ].filter(([, name, value]) => v[name] !== value);
  const all = Object.fromEntries(savers.map(([, name, value]) => [name, value]));
  const names = savers.map(([label]) => label).join(", ");
  const combined = savers.length > 1 ? [[names, all]] : [];
  for (const factor of [2, 4, 8]) {
    combined.push([`${names ? `${names}, ` : ""}tp ${v.tp} → ${factor * v.tp} (${v.dp * factor * v.tp * v.pp} GPUs)`,
      { ...all, tp: factor * v.tp, sequence_parallel: true }]);
  }
  return { singles: singles.filter(([, patch]) => patch), combined };
}

/** The fit view's request: full training sends no `finetune` (a rank applies to adapters only). */
function fitRequest(patch = {}) {
  const body = buildRequest(FIT_FIELDS, patch);
  if (body.finetune.method === "full") delete body.finetune;
  return body;
}

async function askAll(path, build, changes) {
  const answers = await Promise.allSettled(changes.map(([, patch]) => api(path, build(patch))));
  return changes
    .map(([label, patch], i) => ({ label, patch, answer: answers[i].value }))
    .filter((row) => row.answer?.fits === true); // a change the API rejects (tp not dividing the heads) is no advice
}

async function runFit(panel) {
  const body = fitRequest();
  panel.dataset.request = JSON.stringify(body);
  const answer = await api("v1/memory/training", body);
  let advice = [];
  let together = false; // no single change fits: the advice is one combination of changes
  if (answer.fits === false) {
    const values = Object.fromEntries(FIT_FIELDS.map((name) => [name, readValue(document.getElementsByName(name)[0])]));
    const { singles, combined } = memoryChanges(values);
    advice = await askAll("v1/memory/training", fitRequest, singles);
    together = advice.length === 0;
    if (together) {
      for (const change of combined) {
        advice = await askAll("v1/memory/training", fitRequest, [change]);
        if (advice.length) break;
      }
    }
  }
  return () => drawFit(panel, answer, advice, together);
}

function drawFit(panel, answer, advice, together) {
  const rows = [{ label: "this setup", answer }, ...advice].map((row) => ({
    ...row,
    data: {
      label: row.label,
      ...row.answer.per_gpu, // weights_bytes ... total_bytes, cuda_context_bytes, device_total_bytes
      gpu_memory_bytes: row.answer.gpu_memory_bytes,
      fits: row.answer.fits,
    },
    className: row.answer.fits === false ? "unfit" : "",
  }));
  const gpuBytes = answer.gpu_memory_bytes;
  const total = answer.per_gpu.device_total_bytes; // the tensors and the CUDA context: what fits compares
  const status = panel.querySelector(".status");
  status.className = `status verdict ${answer.fits ? "ok" : "bad"}`;
  status.textContent = answer.fits
    ? `Fits: ${fmt.gib(total)} of ${fmt.gib(gpuBytes)} per GPU on ${answer.gpu} (${fmt.gib(gpuBytes - total)} left).`
    : `Does not fit: ${fmt.gib(total)} per GPU, ${fmt.gib(total - gpuBytes)} over the ${fmt.gib(gpuBytes)} of ${answer.gpu}.`;
  if (answer.cpu_offload_bytes > 0) status.textContent += ` Plus ${fmt.gib(answer.cpu_offload_bytes)} of host memory per GPU for the offloaded optimizer states.`;
  if (answer.finetune) {
    const ft = answer.finetune;
    status.textContent += ` ${ft.method === "qlora" ? "QLoRA" : "LoRA"}: ${fmt.count(ft.trainable_params)} trainable parameters `
      + `(${fmt.percent(ft.trainable_fraction)} of ${fmt.count(ft.total_params)}); the frozen base keeps its activations.`;
  }
  drawChart(panel.querySelector("canvas"), {
    type: "bar",
    data: {
      labels: rows.map((row) => row.label),
      datasets: MEMORY_PARTS.map(([key, label], i) => ({
        label, data: rows.map((row) => row.answer.per_gpu[key] / GiB), backgroundColor: COLORS[i],
      })),
    },
    options: {
      indexAxis: "y",
      scales: {
        x: { stacked: true, title: { display: true, text: "memory per GPU (GiB = 2^30 bytes)" }, suggestedMax: (1.08 * gpuBytes) / GiB },
        y: { stacked: true, ticks: { autoSkip: false } },
      },
      plugins: {
        limitLine: { value: gpuBytes / GiB, label: `${answer.gpu}: ${fmt.gib(gpuBytes)}` },
        tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${c.parsed.x.toFixed(2)} GiB` } },
      },
    },
    plugins: [limitLine],
  });
  renderTable(panel.querySelector(".table"), "Memory per GPU", [
    { label: "setup", value: (r) => r.label },
    ...MEMORY_PARTS.map(([key, label]) => ({ label, value: (r) => fmt.gib(r.answer.per_gpu[key]) })),
    { label: "total", value: (r) => fmt.gib(r.answer.per_gpu.device_total_bytes) },
    { label: "GPUs", value: (r) => String(r.answer.n_gpus) },
    { label: "fits", value: (r) => (r.answer.fits ? "yes" : "no") },
  ], rows);
  const box = panel.querySelector(".advice");
  box.replaceChildren();
  if (answer.fits === false) {
    const heading = document.createElement("p");
    heading.textContent = !advice.length
      ? "No change tried here makes it fit: use a GPU with more memory, or ask the layout view for a plan."
      : together ? "No single change makes it fit; these together do:" : "What to change (each fits on its own):";
    box.append(heading);
    if (advice.length) {
      const list = document.createElement("ul");
      for (const row of advice) {
        const item = document.createElement("li");
        item.textContent = `${row.label}: ${fmt.gib(row.answer.per_gpu.device_total_bytes)} per GPU`;
        const apply = document.createElement("button");
        apply.type = "button";
        apply.textContent = "Apply";
        apply.setAttribute("aria-label", `Apply: ${row.label}`);
        apply.addEventListener("click", () => {
          applyPatch(row.patch);
          const status = panel.querySelector(".status"); // the button goes; keyboard focus lands on the new verdict
          status.tabIndex = -1;
          status.focus();
        });
        item.append(apply);
        list.append(item);
      }
      box.append(list);
    }
  }
  panel.querySelector(".formulas").textContent = [...answer.formulas, `not counted: ${answer.assumptions.excluded ?? "—"}`].join(" · ");
}

function applyPatch(patch) {
  for (const [name, value] of Object.entries(patch)) setValue(document.getElementsByName(name)[0], value);
  inputsChanged();
}

// --- What will it cost? ---------------------------------------------------------------------

let latestPrices = null; // the catalog's current prices, for each row's source (fetched once)

async function runCost(panel) {
  const body = buildRequest(["model", "n_gpus", "seq_len", "tokens", "pricing", "sort_by"]);
  panel.dataset.request = JSON.stringify(body);
  latestPrices ??= listAll("v1/prices?latest=true").catch((error) => {
    latestPrices = null; // asked again next time
    throw error;
  });
  const [answer, prices] = await Promise.all([api("v1/cost/compare", body), latestPrices]);
  const source = new Map(prices.map((p) => [`${p.gpu_id}|${p.provider_id}|${p.pricing}`, p.source]));
  return () => drawCost(panel, answer, source);
}

function drawCost(panel, answer, source) {
  const chosen = document.getElementById("gpu").value;
  const rows = answer.rows.map((row) => {
    const from = source.get(`${row.gpu}|${row.provider}|${row.pricing}`) ?? "not in the current price list";
    return {
      ...row,
      source: from,
      title: `${row.gpu} at ${row.provider}: ${fmt.usdPerHour(row.usd_per_gpu_hour)}, price as of ${row.as_of}; source: ${from}`,
      className: [row.gpu === chosen ? "chosen" : "", row.cost_usd == null || row.fits === false ? "unfit" : ""].join(" ").trim(),
      data: {
        gpu: row.gpu, provider: row.provider, cost_usd: row.cost_usd, wall_clock_hours: row.wall_clock_hours,
        gpu_hours: row.gpu_hours, usd_per_gpu_hour: row.usd_per_gpu_hour, as_of: row.as_of, source: from, fits: row.fits,
      },
    };
  });
  const drawn = rows.filter((row) => row.cost_usd != null && row.fits !== false);
  const status = panel.querySelector(".status");
  status.className = "status";
  const byTime = answer.assumptions.sort_by === "time";
  const left = rows.length - drawn.length;
  status.textContent = drawn.length
    ? `${fmt.flops(answer.total_flops)} FLOPs. ${byTime ? "Fastest" : "Cheapest"}: ${drawn[0].gpu} at ${drawn[0].provider}, ` +
      `${fmt.usd(drawn[0].cost_usd)} in ${fmt.hours(drawn[0].wall_clock_hours)}` +
      (left ? ` (${left} ${left === 1 ? "row" : "rows"} without an estimate only in the table).` : ".")
    : "No GPU in the catalog has a priced estimate for this run.";
  panel.querySelector(".chart").style.height = `${Math.max(20, 2.5 + drawn.length * 1.15)}rem`;
  drawChart(panel.querySelector("canvas"), {
    data: {
      labels: drawn.map((row) => `${row.gpu} · ${row.provider}`),
      datasets: [
        {
          type: "bar", label: "cost (USD)", data: drawn.map((row) => row.cost_usd), xAxisID: "x", order: 2,
          backgroundColor: drawn.map((row) => (row.gpu === chosen ? COLORS[1] : COLORS[0])),
        },
        {
          type: "line", label: "wall clock (hours)", data: drawn.map((row) => row.wall_clock_hours), xAxisID: "x2",
          showLine: false, pointStyle: "rectRot", pointRadius: 5, backgroundColor: COLORS[2], borderColor: COLORS[2], order: 1, // over the bars
        },
      ],
    },
    options: {
      indexAxis: "y",
      scales: {
        x: { position: "bottom", beginAtZero: true, title: { display: true, text: "cost (USD)" } },
        x2: { position: "top", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "wall clock (hours)" } },
        y: { ticks: { autoSkip: false } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: (c) => (c.dataset.xAxisID === "x2" ? `wall clock: ${fmt.hours(c.parsed.x)}` : `cost: ${fmt.usd(c.parsed.x)}`),
            afterBody: (items) => {
              const row = drawn[items[0].dataIndex];
              return [`${fmt.usdPerHour(row.usd_per_gpu_hour)} (${row.pricing}), as of ${row.as_of}`, `source: ${row.source}`, `plan: ${row.plan ?? "—"}`];
            },
          },
        },
      },
    },
  });
  renderTable(panel.querySelector(".table"), "Cost of the run by GPU and provider", [
    { label: "GPU · provider", value: (r) => `${r.gpu} · ${r.provider}` },
    { label: "cost", value: (r) => fmt.usd(r.cost_usd) },
    { label: "wall clock", value: (r) => fmt.hours(r.wall_clock_hours) },
    { label: "GPU-hours", value: (r) => fmt.count(r.gpu_hours) },
    { label: "price", value: (r) => fmt.usdPerHour(r.usd_per_gpu_hour) },
    { label: "as of", value: (r) => r.as_of },
    { label: "MFU", value: (r) => fmt.percent(r.mfu) },
    { label: "plan or note", value: (r) => r.plan ?? r.note ?? "" },
  ], rows);
  panel.querySelector(".formulas").textContent = answer.formulas.join(" · ");
}

// --- What can I get for my budget? --------------------------------------------------------

// Over-trained shapes beside the optimum (tokens per parameter): Llama 3 8B saw 15T tokens
// (Meta 2024, "The Llama 3 Herd of Models" §3.1), about 1,900 per parameter.
const OVERTRAINED = [100, 300, 1000, 1875];
const ISOFLOP_STEPS = 8; // points per decade of model size on the curve

async function runBudget(panel) {
  const body = buildRequest(["gpu", "n_gpus", "budget_usd", "scaling_law"]);
  panel.dataset.request = JSON.stringify(body);
  const optimum = await api("v1/budget", body);
  const law = body.scaling_law;
  const compute = optimum.compute_flops;
  // the IsoFLOP curve: the same compute spent on models from 1/30 to 10 times the optimum
  const sizes = [];
  for (let k = -12; k <= 8; k++) if (k !== 0) sizes.push(Math.round(optimum.params * 10 ** (k / ISOFLOP_STEPS)));
  const shapes = OVERTRAINED.filter((ratio) => ratio > 1.5 * optimum.tokens_per_param);
  // a shape the API declines (a model too small to count, at a tiny budget) is left off the curve
  const answered = async (bodies) => (await Promise.allSettled(bodies.map((b) => api("v1/budget", b))))
    .filter((r) => r.status === "fulfilled").map((r) => r.value);
  // the lifetime choice for the optimum's loss: the FLOP-optimal and the dollar-optimal size
  const served = Number(document.getElementById("inference_tokens").value);
  const lifetimeBody = { target_loss: optimum.predicted_loss, inference_tokens: served, gpu: body.gpu, n_gpus: body.n_gpus,
    scaling_law: law === "chinchilla_20" ? "hoffmann2022" : law };
  const [curve, overtrained, lifetime] = await Promise.all([
    answered(sizes.map((n) => ({ compute_flops: compute, n_params: n, scaling_law: law }))),
    answered(shapes.map((r) => ({ compute_flops: compute, tokens_per_param: r, scaling_law: law }))),
    Number.isFinite(served) && served >= 0 ? api("v1/budget/lifetime", lifetimeBody).catch(() => null) : null,
  ]);
  return () => {
    drawBudget(panel, optimum, [...curve, optimum].sort((a, b) => a.params - b.params), overtrained);
    drawBudgetPlan(panel, optimum, lifetime, served);
  };
}

/** The plan behind the answer (layout, MFU, days) and the lifetime choice in dollars. */
function drawBudgetPlan(panel, optimum, lifetime, served) {
  const behind = panel.querySelector(".plan-behind");
  const p = optimum.plan;
  behind.textContent = p
    ? `Timed by its best plan on ${optimum.n_gpus} GPUs: ${layout(p)}, MFU ${fmt.percent(optimum.mfu)}, ` +
      `${fmt.hours(optimum.wall_clock_hours)} (${optimum.architecture.n_layers} layers × ${optimum.architecture.d_model}, ` +
      `${optimum.architecture.source} shape).`
    : `Timed at a stated MFU (${fmt.percent(optimum.mfu)}): ${optimum.reason ?? "give a GPU count to time it by its plan"}.`;
  behind.dataset.mfu = optimum.mfu ?? "";
  behind.dataset.days = optimum.wall_clock_days ?? "";
  const life = panel.querySelector(".lifetime");
  const [flop, dollar] = [lifetime?.flop_optimal, lifetime?.dollar_optimal];
  life.textContent = flop && dollar
    ? `Serving ${fmt.count(served)} tokens ` +
      `at this loss: FLOP-optimal ${fmt.count(flop.params)} parameters for ${fmt.usd(flop.total_usd)}; dollar-optimal ` +
      `${fmt.count(dollar.params)} for ${fmt.usd(dollar.total_usd)} (saves ${fmt.usd(lifetime.usd_saved)}).`
    : "";
  life.dataset.flopParams = flop?.params ?? "";
  life.dataset.dollarParams = dollar?.params ?? "";
  life.dataset.usdSaved = lifetime?.usd_saved ?? "";
}

function drawBudget(panel, optimum, curve, overtrained) {
  const point = (a) => ({ x: a.params, y: a.predicted_loss });
  const status = panel.querySelector(".status");
  status.className = "status";
  const price = optimum.price;
  status.textContent = `${fmt.usd(optimum.cost_usd)} buys ${fmt.flops(optimum.compute_flops)} FLOPs` +
    (price ? ` on ${document.getElementById("gpu").value} at ${price.provider} (${fmt.usdPerHour(price.usd_per_gpu_hour)}, as of ${price.as_of})` : "") +
    `: compute-optimal ${fmt.count(optimum.params)} parameters on ${fmt.count(optimum.tokens)} tokens, predicted loss ${fmt.loss(optimum.predicted_loss)}.`;
  drawChart(panel.querySelector("canvas"), {
    type: "scatter",
    data: {
      datasets: [
        { label: "IsoFLOP curve", data: curve.map(point), showLine: true, borderColor: COLORS[0], backgroundColor: COLORS[0], pointRadius: 2 },
        { label: "compute-optimal", data: [point(optimum)], pointStyle: "star", pointRadius: 12, borderWidth: 2, borderColor: COLORS[4], backgroundColor: COLORS[4] },
        { label: "over-trained (cheaper to serve)", data: overtrained.map(point), pointStyle: "triangle", pointRadius: 8, borderColor: COLORS[1], backgroundColor: COLORS[1] },
        { label: "same dollars, each size's own plan", data: (optimum.alternatives ?? []).filter((a) => a.predicted_loss != null).map(point),
          pointStyle: "rectRot", pointRadius: 7, borderColor: COLORS[2], backgroundColor: COLORS[2] },
      ],
    },
    options: {
      scales: {
        x: { type: "logarithmic", title: { display: true, text: "parameters" }, ticks: { callback: (v) => fmt.count(v) } },
        y: { title: { display: true, text: "predicted loss (nats per token)" } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: (c) => {
              const planned = (optimum.alternatives ?? []).filter((a) => a.predicted_loss != null);
              const a = [curve, [optimum], overtrained, planned][c.datasetIndex][c.dataIndex];
              return `${fmt.count(a.params)} params, ${fmt.count(a.tokens)} tokens (${a.tokens_per_param.toFixed(0)}/param): loss ${fmt.loss(a.predicted_loss)}`;
            },
          },
        },
      },
    },
  });
  const row = (kind, a) => ({
    ...a, kind,
    className: kind === "compute-optimal" ? "chosen" : "",
    data: { kind, params: a.params, tokens: a.tokens, loss: a.predicted_loss, tokens_per_param: a.tokens_per_param },
  });
  renderTable(panel.querySelector(".table"), `Models trainable with ${fmt.flops(optimum.compute_flops)} FLOPs`, [
    { label: "shape", value: (r) => r.kind },
    { label: "parameters", value: (r) => fmt.count(r.params) },
    { label: "tokens", value: (r) => fmt.count(r.tokens) },
    { label: "tokens / parameter", value: (r) => r.tokens_per_param.toFixed(1) },
    { label: "predicted loss", value: (r) => fmt.loss(r.predicted_loss) },
    { label: "above the optimum", value: (r) => fmt.loss(r.predicted_loss - optimum.predicted_loss) },
  ], [
    row("compute-optimal", optimum),
    ...overtrained.map((a) => row("over-trained", a)),
    ...curve.filter((a) => a !== optimum).map((a) => row("IsoFLOP curve", a)),
  ]);
  panel.querySelector(".formulas").textContent = [...optimum.formulas, optimum.loss?.limits ?? ""].filter(Boolean).join(" · ");
}

// --- How should I lay it out? ------------------------------------------------------------------

const STEP_PARTS = [
  ["compute_seconds", "compute"], ["recompute_seconds", "recompute"], ["tp_comm_seconds", "tensor-parallel comm"],
  ["cp_comm_seconds", "context-parallel comm"], ["ep_comm_seconds", "expert-parallel comm"], ["pp_comm_seconds", "pipeline sends"],
  ["bubble_seconds", "pipeline bubble"], ["dp_comm_seconds", "data-parallel comm"], ["optimizer_seconds", "optimizer"],
  ["host_seconds", "waiting on the host"],
];

function layout(p) {
  return `tp=${p.tp} pp=${p.pp} dp=${p.dp}` + (p.cp > 1 ? ` cp=${p.cp}` : "") + (p.ep > 1 ? ` ep=${p.ep}` : "") +
    ` ZeRO-${p.zero_stage} mb=${p.micro_batch_size} ${p.recompute}` + (p.virtual_stages > 1 ? ` v=${p.virtual_stages}` : "");
}

async function runPlan(panel) {
  const body = buildRequest(["model", "gpu", "n_gpus", "seq_len", "global_batch_size", "top_k", "plan_finetune", "plan_lora_r"]);
  if (body.finetune.method === "full") delete body.finetune; // a rank applies to adapters only
  panel.dataset.request = JSON.stringify(body);
  const answer = await api("v1/plan", body);
  return () => drawPlan(panel, answer);
}

function drawPlan(panel, answer) {
  const plans = answer.plans;
  const status = panel.querySelector(".status");
  status.className = plans.length ? "status" : "status verdict bad";
  status.textContent = plans.length
    ? `Best of ${answer.search.feasible} feasible layouts (${answer.search.considered} considered): ${layout(plans[0])}, ` +
      `${fmt.seconds(plans[0].step_time_seconds)} a step, MFU ${fmt.percent(plans[0].mfu)}.`
    : `No layout fits: ${answer.reason ?? "no reason given"}`;
  const labels = plans.map((p, i) => `#${i + 1} ${layout(p)}`);
  const parts = STEP_PARTS.filter(([key]) => plans.some((p) => p.step_time[key] > 0));
  drawChart(panel.querySelector("canvas"), {
    type: "bar",
    data: {
      labels,
      datasets: parts.map(([key, label], i) => ({ label, data: plans.map((p) => p.step_time[key]), backgroundColor: COLORS[i % COLORS.length] })),
    },
    options: {
      indexAxis: "y",
      scales: { x: { stacked: true, title: { display: true, text: "step time (seconds)" } }, y: { stacked: true, ticks: { autoSkip: false } } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${c.parsed.x.toFixed(4)} s` } } },
    },
  });
  renderTable(panel.querySelector(".table"), "Ranked layouts", [
    { label: "layout", value: (r) => r.label },
    { label: "step time", value: (r) => fmt.seconds(r.step_time_seconds) },
    ...parts.map(([key, label]) => ({ label, value: (r) => fmt.seconds(r.step_time[key]) })),
    { label: "tokens/s", value: (r) => fmt.count(r.tokens_per_second) },
    { label: "MFU", value: (r) => fmt.percent(r.mfu) },
    { label: "memory/GPU", value: (r) => fmt.gib(r.per_gpu_total_bytes) },
  ], plans.map((p, i) => ({
    ...p, label: labels[i],
    data: {
      rank: i + 1, tp: p.tp, pp: p.pp, dp: p.dp, zero_stage: p.zero_stage, micro_batch_size: p.micro_batch_size, recompute: p.recompute,
      step_time_seconds: p.step_time_seconds, per_gpu_total_bytes: p.per_gpu_total_bytes,
      ...p.step_time, // compute_seconds ... host_seconds
    },
  })));
  panel.querySelector(".formulas").textContent = answer.formulas.join(" · ");
}

// --- How should I serve it? ------------------------------------------------------------------

async function runServe(panel) {
  const body = buildRequest(["model", "serve_gpus", "weights_dtype", "engine", "prompt_tokens", "output_tokens", "concurrent_users", "max_tpot"]);
  body.gpu = String(body.gpu).split(",").map((id) => id.trim()).filter(Boolean);
  if (body.max_time_per_output_token_seconds === "") delete body.max_time_per_output_token_seconds;
  panel.dataset.request = JSON.stringify(body);
  const answer = await api("v1/plan/serving", body);
  return () => drawServe(panel, answer);
}

/** " (provider, $/GPU-h, as of date)": the catalog price a dollar figure rests on. */
function priceNote(price) {
  return price ? ` (${price.provider}, ${fmt.usdPerHour(price.usd_per_gpu_hour)}, as of ${price.as_of})` : "";
}

function drawServe(panel, answer) {
  const served = answer.options.filter((o) => o.fits && o.usd_per_million_output_tokens != null);
  const status = panel.querySelector(".status");
  status.className = served.length ? "status" : "status verdict bad";
  const best = served[0];
  status.textContent = best
    ? `Cheapest: ${best.gpu}, ${best.replicas} replica(s) of tp=${best.tp} (${best.n_gpus} GPUs) at ` +
      `${fmt.price(best.usd_per_million_output_tokens)} per million output tokens${priceNote(best.price)}; first token in ${fmt.seconds(best.time_to_first_token_seconds)} ` +
      `(p99 ${fmt.seconds(best.p99_time_to_first_token_seconds)}), then ${fmt.seconds(best.time_per_output_token_seconds)} a token.`
    : `No GPU type serves the load: ${answer.options.map((o) => `${o.gpu}: ${o.reason}`).join("; ")}`;
  drawChart(panel.querySelector("canvas"), {
    type: "bar",
    data: {
      labels: served.map((o) => `${o.gpu} (tp=${o.tp} × ${o.replicas})`),
      datasets: [{ label: "$ per million output tokens", data: served.map((o) => o.usd_per_million_output_tokens), backgroundColor: COLORS[0] }],
    },
    options: {
      indexAxis: "y",
      scales: { x: { title: { display: true, text: "USD per million output tokens" } } },
      plugins: {
        tooltip: {
          callbacks: {
            afterBody: (items) => {
              const o = served[items[0].dataIndex];
              return [`TTFT ${fmt.seconds(o.time_to_first_token_seconds)} (p99 ${fmt.seconds(o.p99_time_to_first_token_seconds)}), ` +
                `TPOT ${fmt.seconds(o.time_per_output_token_seconds)}, ${o.decode_bound}-bound decode`, `price${priceNote(o.price)}`];
            },
          },
        },
      },
    },
  });
  renderTable(panel.querySelector(".table"), "Serving options, cheapest first", [
    { label: "GPU", value: (r) => r.gpu },
    { label: "layout", value: (r) => (r.fits ? `tp=${r.tp} × ${r.replicas} (${r.n_gpus} GPUs)` : r.reason) },
    { label: "batch / replica", value: (r) => (r.fits ? `${r.batch_per_replica} of ${r.max_batch_per_replica}` : "—") },
    { label: "TTFT", value: (r) => fmt.seconds(r.time_to_first_token_seconds) },
    { label: "TTFT p99", value: (r) => fmt.seconds(r.p99_time_to_first_token_seconds) },
    { label: "TPOT", value: (r) => fmt.seconds(r.time_per_output_token_seconds) },
    { label: "$/M output", value: (r) => fmt.price(r.usd_per_million_output_tokens) },
    { label: "$/M input", value: (r) => fmt.price(r.usd_per_million_input_tokens) },
    { label: "price", value: (r) => (r.price ? `${fmt.usdPerHour(r.price.usd_per_gpu_hour)} at ${r.price.provider}` : "—") },
    { label: "price as of", value: (r) => r.price?.as_of ?? "—" },
  ], answer.options.map((o) => ({
    ...o, className: o === best ? "chosen" : "",
    title: o.price ? `${o.gpu} at ${o.price.provider}: ${fmt.usdPerHour(o.price.usd_per_gpu_hour)} (${o.price.pricing}), price as of ${o.price.as_of}; source: ${o.price.source}` : "",
    data: { gpu: o.gpu, fits: o.fits, tp: o.tp, replicas: o.replicas, usd_per_million_output_tokens: o.usd_per_million_output_tokens,
      time_to_first_token_seconds: o.time_to_first_token_seconds, time_per_output_token_seconds: o.time_per_output_token_seconds,
      provider: o.price?.provider, usd_per_gpu_hour: o.price?.usd_per_gpu_hour, as_of: o.price?.as_of, source: o.price?.source },
  })));
  panel.querySelector(".formulas").textContent = answer.formulas.join(" · ");
}

// --- Mixed cluster ------------------------------------------------------------------------------

async function runMixed(panel) {
  const v = buildRequest(["model", "seq_len", "pool_a_gpu", "pool_a_n", "pool_b_gpu", "pool_b_n", "mixed_batch"]);
  const body = {
    model: v.model, seq_len: v.seq_len, global_batch_size: v.global_batch_size, top_k: 3,
    pools: [{ gpu: v.pool_a_gpu, n_gpus: v.pool_a_n }, { gpu: v.pool_b_gpu, n_gpus: v.pool_b_n }],
  };
  panel.dataset.request = JSON.stringify(body);
  const answer = await api("v1/plan", body);
  return () => drawMixed(panel, answer);
}

function drawMixed(panel, answer) {
  const best = answer.plans[0];
  const single = answer.best_homogeneous;
  const status = panel.querySelector(".status");
  status.className = best ? "status" : "status verdict bad";
  if (!best) {
    status.textContent = `No layout fits: ${answer.reason ?? "no reason given"}`;
  } else if (best.stages) {
    const groups = new Set(best.stages.map((st) => st.group)).size;
    const own = best.cross_group_seconds !== null && best.cross_group_seconds !== undefined;
    const kind = groups > 1 ? (own ? ` as ${groups} data-parallel groups, each its own tp × pp (an all-reduce across them of ${fmt.seconds(best.cross_group_seconds)})`
      : ` as ${groups} data-parallel groups of ${best.pp}`) + " (micro-batches split so they finish together)" : "";
    status.textContent = `Best plan: ${best.stages.length} stages over ${best.gpu}${kind}, ${fmt.seconds(best.step_time_seconds)} a step, ` +
      `MFU ${fmt.percent(best.mfu)}` + (single ? `; the best single pool (${single.gpu}) takes ${fmt.seconds(single.step_time_seconds)}.` : ".");
  } else {
    status.textContent = `Best plan: one pool, ${best.gpu} (${layout(best)}), ${fmt.seconds(best.step_time_seconds)} a step: ` +
      "mixing the pools is no faster here.";
  }
  // bars: each stage of the best plan (or the plan itself), then the best single pool, parts stacked
  const grouped = best?.stages && new Set(best.stages.map((st) => st.group)).size > 1;
  const bars = best ? [...(best.stages ?? [best]).map((st, i) => ({ label: best.stages ? `${grouped ? `group ${st.group + 1}, ` : ""}stage ${i + 1}: ${st.gpu} × ${st.n_gpus} (${st.layers} layers, ${st.micro_batch_size} × ${st.gradient_accumulation_steps} per replica)` : `${best.gpu} × ${best.n_gpus}`, parts: st.step_time, total: best.step_time_seconds, item: st }))] : [];
  if (single && best?.stages) bars.push({ label: `best single pool: ${single.gpu} × ${single.n_gpus}`, parts: single.step_time, total: single.step_time_seconds, item: single });
  const parts = STEP_PARTS.filter(([key]) => bars.some((b) => b.parts[key] > 0));
  drawChart(panel.querySelector("canvas"), {
    type: "bar",
    data: {
      labels: bars.map((b) => b.label),
      datasets: parts.map(([key, label], i) => ({ label, data: bars.map((b) => b.parts[key]), backgroundColor: COLORS[i % COLORS.length] })),
    },
    options: {
      indexAxis: "y",
      scales: { x: { stacked: true, title: { display: true, text: "step time (seconds)" } }, y: { stacked: true, ticks: { autoSkip: false } } },
    },
  });
  renderTable(panel.querySelector(".table"), "Stages of the best plan, and the best single pool", [
    { label: "part", value: (r) => r.label },
    { label: "GPUs", value: (r) => String(r.item.n_gpus) },
    { label: "layers", value: (r) => (r.item.layers != null ? String(r.item.layers) : "all") },
    { label: "tp × dp", value: (r) => `${r.item.tp} × ${r.item.dp}` },
    { label: "memory/GPU", value: (r) => fmt.gib(r.item.per_gpu_total_bytes) },
    { label: "step", value: (r) => fmt.seconds(r.total) },
  ], bars.map((b) => ({ ...b, data: { gpu: b.item.gpu, n_gpus: b.item.n_gpus, layers: b.item.layers, tp: b.item.tp, dp: b.item.dp, step_time_seconds: b.total } })));
  panel.querySelector(".formulas").textContent = answer.formulas.join(" · ");
}

// --- the page ------------------------------------------------------------------------------

const VIEWS = { fit: runFit, cost: runCost, budget: runBudget, plan: runPlan, serve: runServe, mixed: runMixed };
const generation = {}; // per view: the latest refresh; an older answer is dropped
const stale = new Set(Object.keys(VIEWS));
let active = "fit";

async function refresh(view) {
  const panel = document.getElementById(view);
  const mine = (generation[view] = (generation[view] ?? 0) + 1);
  const status = panel.querySelector(".status");
  panel.dataset.state = "loading";
  panel.setAttribute("aria-busy", "true");
  status.className = "status";
  status.textContent = "Asking the service…";
  clearErrors();
  try {
    const draw = await VIEWS[view](panel);
    await loadChart();
    if (mine !== generation[view]) return;
    draw();
    stale.delete(view);
    panel.dataset.state = "ready";
  } catch (error) {
    if (mine !== generation[view]) return;
    clearDrawing(panel); // an earlier answer must not stand beside an error about the new inputs
    status.className = "status bad";
    showError(error, status);
    panel.dataset.state = "error";
  } finally {
    if (mine === generation[view]) panel.removeAttribute("aria-busy");
  }
}

function clearDrawing(panel) {
  const canvas = panel.querySelector("canvas");
  window.Chart?.getChart(canvas)?.destroy();
  delete canvas.dataset.series;
  for (const part of panel.querySelectorAll(".table, .advice, .formulas")) part.replaceChildren();
}

function inputsChanged() {
  for (const view of Object.keys(VIEWS)) stale.add(view);
  writeUrl(active);
  refresh(active);
}

function openView(view, { focus = false } = {}) {
  active = view in VIEWS ? view : "fit";
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.dataset.view === active;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    if (selected && focus) tab.focus();
    document.getElementById(tab.dataset.view).hidden = !selected;
  }
  writeUrl(active);
  if (stale.has(active)) refresh(active);
}

function wire() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => openView(tab.dataset.view));
    tab.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(tab);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      openView(tabs[(next + tabs.length) % tabs.length].dataset.view, { focus: true });
    });
  }
  for (const el of controls()) el.addEventListener("change", inputsChanged);
  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault(); // Enter in a field: ask again
      inputsChanged();
    });
  }
}

/** Put the catalog's options in a select, keeping its value (one the catalog lacks stays, marked). */
function fill(select, options) {
  const wanted = select.value || select.dataset.default;
  select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
  setValue(select, wanted);
}

async function loadCatalog() {
  const [models, gpus] = await Promise.all([listAll("v1/models"), listAll("v1/gpus")]);
  fill(document.getElementById("model"), models.map((m) => [m.id, m.name ? `${m.name} (${m.id})` : m.id]));
  fill(document.getElementById("gpu"), gpus.map((g) => [g.id, `${g.name} (${fmt.gib(g.memory_bytes)})`]));
}

function main() {
  wire();
  // the first view is asked for at once, with the preset and GPU the address (or the default)
  // names; the pickers get the catalog's full lists when they arrive
  const params = new URLSearchParams(location.search);
  for (const select of [document.getElementById("model"), document.getElementById("gpu")]) {
    const wanted = params.get(select.name) ?? select.dataset.default;
    select.replaceChildren(new Option(wanted, wanted));
  }
  openView(readUrl() ?? "fit"); // sends the first view's request
  loadChart().catch(() => {}); // a failure is shown by the view that draws
  const first = document.getElementById(active);
  const ready = () => first.dataset.state !== "loading" && performance.mark("first-view");
  new MutationObserver((_, observer) => ready() && observer.disconnect()).observe(first, { attributes: true, attributeFilter: ["data-state"] });
  loadCatalog().catch((error) => {
    const status = document.getElementById("catalog-status");
    status.hidden = false;
    showError(error, status);
    status.textContent = `The catalog could not be read: ${status.textContent}`;
  });
}

main();
