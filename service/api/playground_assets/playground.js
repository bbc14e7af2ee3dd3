// Candor playground: one POST /v1/answer per question, rendered without any framework.
// Every value from the server is set with textContent (never as HTML).
"use strict";

const KEY = "candor.apiKey";
const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const capitalise = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const pct = (x) => (x == null ? "n/a" : `${(100 * x).toFixed(1)}%`);

function request() {
  const body = { question: $("question").value, return_samples: true, policy: {} };
  const context = $("context").value.trim();
  if (context) body.context = context;
  body.task = $("task").value;
  if ($("max_stage").value !== "") body.policy.max_stage = Number($("max_stage").value);
  if ($("max_tokens").value !== "") body.max_tokens = Number($("max_tokens").value);
  if ($("run_all").checked) body.policy.run_all = true;
  if ($("claims").checked) body.claims = true;
  return body;
}

async function ask(event) {
  event.preventDefault();
  const key = $("api_key").value.trim();
  if (key) localStorage.setItem(KEY, key); else localStorage.removeItem(KEY);
  const headers = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  $("submit").disabled = true;
  $("status").textContent = "thinking…";
  $("error").hidden = true;
  const t0 = performance.now();
  try {
    const r = await fetch("/v1/answer", { method: "POST", headers, body: JSON.stringify(request()) });
    const data = await r.json().catch(() => ({ error: { message: `HTTP ${r.status}` } }));
    if (!r.ok) return showError(r.status, data.error || {});
    render(data);
    $("status").textContent = `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  } catch (err) {
    showError(0, { message: `could not reach the server: ${err}` });
  } finally {
    $("submit").disabled = false;
  }
}

function showError(status, error) {
  const box = $("error");
  box.replaceChildren(
    el("b", {}, status ? `HTTP ${status} ${error.type || ""}` : "network error"),
    el("p", {}, error.message || "request failed"),
  );
  if (error.param) box.append(el("p", { class: "muted" }, `field: ${error.param}`));
  if (status === 401) box.append(el("p", {}, "Open “API key” above and enter a key."));
  box.hidden = false;
  $("status").textContent = "";
}

function render(d) {
  $("result").hidden = false;
  const decision = $("decision");
  decision.textContent = d.decision;
  decision.className = `badge ${d.decision}`;
  $("reason").textContent = d.abstained ? `reason: ${d.reason}` : `stage ${d.stage_reached}`;
  $("audit").hidden = !d.audit;
  const answer = $("answer");
  answer.textContent = d.answer || "(empty answer)";
  answer.className = d.abstained ? "answer abstained" : "answer";
  answer.title = d.abstained ? "the model's best answer, withheld" : "";
  $("withheld").hidden = !d.abstained;
  renderGauge(d.confidence, d.calibration.threshold);
  renderScope(d.scope, d.calibration);
  renderPromise(d.calibration);
  renderStages(d.stages);
  const flags = [`homogeneous: ${d.signals.homogeneous ?? "n/a"}`,
                 `fallback: ${d.fallback ?? "none"}`,
                 `clusters: ${d.signals.n_clusters ?? "n/a"}`];
  $("flags").textContent = flags.join(" · ");
  $("skipped").textContent = d.skipped.length ? `skipped: ${d.skipped.join("; ")}` : "";
  renderSamples(d.samples, d.answer);
  renderClaims(d.claims);
  $("meta").textContent = `${d.id} · ${d.model} · ${d.usage.prompt_tokens} prompt + ` +
    `${d.usage.completion_tokens} completion tokens`;
}

function renderGauge(confidence, threshold) {
  $("confidence").textContent = pct(confidence);
  $("threshold").textContent = pct(threshold);
  const fill = $("gauge-fill");
  fill.style.width = `${100 * confidence}%`;
  fill.className = threshold != null && confidence < threshold ? "gauge-fill below" : "gauge-fill";
  const mark = $("gauge-threshold");
  mark.hidden = threshold == null;
  if (threshold != null) mark.style.left = `calc(${100 * threshold}% - 1px)`;
}

function renderPromise(c) {
  const p = $("promise");
  if (c.target_risk != null) {
    p.className = "promise";
    p.textContent = `Calibrated promise (${c.profile || c.id}): among answered questions the ` +
      `error rate is ≤ ${pct(c.target_risk)}, with probability ≥ ${pct(1 - c.delta)}.`;
  } else {
    p.className = "promise none";
    p.textContent = c.reason ? `No promise for this answer. ${capitalise(c.reason)}.`
      : "Uncalibrated: the confidence is a score, not a promise.";
  }
}

// A p-value or level as text: two significant digits, more where two would make
// "p = 0.05 < 0.05" out of a p-value just below the level.
function fmtP(x, other) {
  if (x == null) return "n/a";
  const short = String(Number(x.toPrecision(2)));
  return other != null && short === String(Number(other.toPrecision(2))) ? String(x) : short;
}

function renderScope(s, c) {
  const row = $("scope-row");
  const badge = $("scope");
  // No test ran: nothing to show when uncalibrated; the promise line says why otherwise.
  row.hidden = !s || (!s.tested && !c.calibrated);
  if (row.hidden) return;
  const others = Object.entries(s.candidates || {});
  badge.title = others.length
    ? `p-value per profile considered: ${others.map(([n, p]) => `${n} ${p}`).join(", ")}`
    : "";
  if (!s.tested) {
    badge.className = "badge scope untested";
    badge.textContent = "scope not tested — no promise";
  } else if (s.in_scope) {
    badge.className = "badge scope in";
    badge.textContent = `in scope of ${s.profile} (p = ${fmtP(s.p_value)})`;
  } else {
    badge.className = "badge scope out";
    badge.textContent = `out of scope: nearest ${s.profile} ` +
      `(p = ${fmtP(s.p_value, s.level)} < ${fmtP(s.level)}) — no promise`;
  }
}

function renderStages(stages) {
  const box = $("stages");
  box.replaceChildren(...stages.map((s) => {
    const conf = s.confidence == null ? 0 : s.confidence;
    const tag = s.informative ? el("span", { class: "tag" }, "informative")
      : el("span", { class: "tag off" }, "uninformative");
    const row = el("div", { class: `stage${s.informative ? "" : " uninformative"}`,
                            "data-stage": String(s.stage) },
      el("span", { class: "name" }, `${s.stage} ${s.name}`),
      el("div", { class: "bar" }, el("div", { style: { width: `${100 * conf}%` } })),
      el("span", { class: "nums" }, `${pct(s.confidence)} · ${Math.round(s.ms)} ms · ` +
                                   `${s.tokens} tok `, tag));
    if (s.note) row.append(el("span", { class: "note" }, s.note));
    return row;
  }));
}

function renderClaims(claims) {
  const card = $("claims-card");
  card.hidden = !claims;
  if (!claims) return;
  $("claims-list").replaceChildren(...claims.items.map((c) => {
    const support = c.signals.support == null ? "" : ` · support ${pct(c.signals.support)}`;
    return el("li", { class: `claim ${c.kept ? "kept" : "dropped"}` },
      el("span", { class: `tag${c.kept ? "" : " off"}` }, c.kept ? "kept" : "dropped"),
      el("span", { class: "text" }, c.text),
      el("span", { class: "nums" }, `${pct(c.confidence)}${support}`));
  }));
  if (!claims.items.length) $("claims-list").append(el("li", { class: "muted" }, "no claims"));
  const p = $("claims-promise");
  if (claims.target_risk != null) {
    p.className = "promise";
    p.textContent = `Claim-level promise: at most ${pct(claims.target_risk)} of answers ` +
      `served this way keep a wrong claim, with probability ≥ ${pct(1 - claims.delta)}.`;
  } else {
    p.className = "promise none";
    p.textContent = `No claim-level promise. ${capitalise(claims.reason || "none applies")}.`;
  }
}

function renderSamples(samples, greedy) {
  const card = $("samples-card");
  card.hidden = !samples || !samples.length;
  if (card.hidden) return;
  const groups = new Map();
  for (const s of samples) {
    if (!groups.has(s.cluster)) groups.set(s.cluster, []);
    groups.get(s.cluster).push(s);
  }
  const sorted = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
  $("samples").replaceChildren(...sorted.map(([id, items]) => {
    const hasGreedy = items.some((s) => s.text.trim() === (greedy || "").trim());
    return el("div", { class: `cluster${hasGreedy ? " greedy" : ""}` },
      el("b", {}, `cluster ${id}: ${items.length} of ${samples.length}`),
      el("span", { class: "muted" }, ` · “${items[0].normalized}”`),
      el("ul", {}, ...items.map((s) => el("li", {}, s.text))));
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  $("api_key").value = localStorage.getItem(KEY) || "";
  $("ask").addEventListener("submit", ask);
});
