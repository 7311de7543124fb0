// Roundhouse console: plain JavaScript over the gateway's own APIs, no dependencies.
// Keys live in sessionStorage only, and go out as Authorization headers.
"use strict";

const $ = (selector) => document.querySelector(selector);
const keys = {
  get api() { return sessionStorage.getItem("roundhouse.api-key") || ""; },
  get admin() { return sessionStorage.getItem("roundhouse.admin-key") || ""; },
};

function setStatus(text) { $("#status").textContent = text || ""; }

function headers(admin, json) {
  const out = {};
  const key = admin ? keys.admin : keys.api;
  if (key) out.Authorization = `Bearer ${key}`;
  if (json) out["Content-Type"] = "application/json";
  return out;
}

async function call(path, { method = "GET", body, admin = false, signal } = {}) {
  const response = await fetch(path, {
    method, signal, headers: headers(admin, body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const error = (await response.json()).error;
      message = typeof error === "string" ? error : (error && error.message) || message;
    } catch (_) { /* not JSON */ }
    const failure = new Error(message);
    failure.status = response.status;
    throw failure;
  }
  return response;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function every(ms, task) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try { await task(); } catch (error) { setStatus(error.message); }
    setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; };
}

function mib(bytes) { return bytes == null ? "–" : `${(bytes / 1048576).toFixed(0)} MiB`; }

// -- keys ---------------------------------------------------------------------------

function setupKeys() {
  for (const [id, name] of [["#api-key", "roundhouse.api-key"], ["#admin-key", "roundhouse.admin-key"]]) {
    const input = $(id);
    input.value = sessionStorage.getItem(name) || "";
    input.addEventListener("change", () => {
      sessionStorage.setItem(name, input.value.trim());
      document.dispatchEvent(new Event("keys-changed"));
    });
  }
  $("#keys").addEventListener("submit", (event) => event.preventDefault());
}

// -- models -------------------------------------------------------------------------

async function modelsPage() {
  const body = $("#models-table tbody");
  const act = async (name, action) => {
    setStatus("");
    try {
      await call(`/admin/deployments/${encodeURIComponent(name)}/${action}`, { method: "POST", admin: true });
    } catch (error) { setStatus(`${action} ${name}: ${error.message}`); }
  };
  every(2000, async () => {
    const health = await (await call("/health/detailed")).json();
    const rows = health.deployments.map((d) => {
      const busy = d.slots.filter((s) => s.processing).length;
      const admin = !keys.admin;
      return el("tr", { "data-deployment": d.name },
        el("td", {}, d.model), el("td", {}, d.name), el("td", {}, d.engine),
        el("td", { class: `state state-${d.state}`, "data-state": d.state }, d.state),
        el("td", { class: "num" }, mib(d.memory_estimate_bytes)),
        el("td", { class: "num" }, d.slots.length ? `${busy} / ${d.slots.length}` : "–"),
        el("td", { class: "num" }, String(d.in_flight)),
        el("td", { class: "num" }, String(d.queue_depth)),
        el("td", {},
          el("button", { type: "button", class: "secondary", disabled: admin,
            title: admin ? "needs the admin key" : undefined,
            onclick: () => act(d.name, "load") }, "Load"), " ",
          el("button", { type: "button", class: "secondary", disabled: admin,
            title: admin ? "needs the admin key" : undefined,
            onclick: () => act(d.name, "unload") }, "Unload")));
    });
    body.replaceChildren(...rows);
    const memory = health.memory;
    $("#models-memory").textContent =
      `Resident estimate ${mib(memory.resident_bytes)}` +
      (memory.budget_bytes ? ` of a ${mib(memory.budget_bytes)} budget` : "") +
      `; process RSS ${mib(health.process.rss_bytes)}.`;
  });
}

// -- live charts --------------------------------------------------------------------

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"];

function drawChart(svg, series, { window: span, dashed = [] }) {
  const width = svg.clientWidth || 400, height = svg.clientHeight || 160, pad = 28;
  const now = Date.now() / 1000;
  let top = 1;
  for (const line of series) for (const [, v] of line.points) if (v != null) top = Math.max(top, v);
  const x = (t) => pad + ((t - (now - span)) / span) * (width - pad - 6);
  const y = (v) => height - 18 - (v / top) * (height - 30);
  const parts = [
    `<line class="axis" x1="${pad}" y1="${height - 18}" x2="${width}" y2="${height - 18}"/>`,
    `<text x="2" y="12">${top >= 100 ? top.toFixed(0) : top.toPrecision(2)}</text>`,
    `<text x="2" y="${height - 20}">0</text>`,
    `<text x="${pad}" y="${height - 4}">-${Math.round(span / 60)} min</text>`,
    `<text x="${width - 30}" y="${height - 4}">now</text>`,
  ];
  let drawn = 0;
  for (const line of series) {
    const points = line.points.filter(([, v]) => v != null);
    if (!points.length) continue;
    drawn += points.filter(([, v]) => v > 0).length;
    const d = points.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join("");
    const dash = dashed.includes(line.kind) ? ' stroke-dasharray="4 3"' : "";
    parts.push(`<path d="${d}" fill="none" stroke="${line.color}" stroke-width="2"${dash}/>`);
  }
  svg.innerHTML = parts.join("");
  // How many non-zero points are drawn: what tests (and curious users) can read.
  svg.dataset.points = String(drawn);
}

async function livePage() {
  every(2000, async () => {
    const feed = await (await call("/ui/api/samples")).json();
    const samples = feed.samples;
    const span = Math.max(60, samples.length * feed.interval);
    const names = [...new Set(samples.flatMap((s) => Object.keys(s.models)))].sort();
    const color = (name) => PALETTE[names.indexOf(name) % PALETTE.length];
    $("#legend").replaceChildren(...names.map((name) =>
      el("span", { style: `--swatch: ${color(name)}` }, name)));
    const series = (field, kind = field) => names.map((name) => ({
      color: color(name), kind,
      points: samples.map((s) => [s.at, s.models[name] ? s.models[name][field] : null]),
    }));
    drawChart($("#chart-tokens"), series("tokens_per_second"), { window: span });
    drawChart($("#chart-requests"), [...series("requests"), ...series("errors")],
      { window: span, dashed: ["errors"] });
    drawChart($("#chart-ttft"), series("ttft_ms"), { window: span });
    drawChart($("#chart-queue"), [...series("queue"), ...series("in_flight")],
      { window: span, dashed: ["in_flight"] });
    const total = (field) => samples.reduce((sum, s) =>
      sum + Object.values(s.models).reduce((a, m) => a + (m[field] || 0), 0), 0);
    $("#live-totals").textContent =
      `${total("requests")} requests, ${total("errors")} errors in the last ${Math.round(span / 60)} min.`;
  });
}

// -- playground ---------------------------------------------------------------------

async function fillModels(select) {
  try {
    const models = (await (await call("/v1/models")).json()).data;
    const previous = select.value;
    select.replaceChildren(...models.map((m) => el("option", { value: m.id }, m.id)));
    if (models.some((m) => m.id === previous)) select.value = previous;
    setStatus("");
  } catch (error) {
    setStatus(error.status === 401 ? "Enter an API key above to list the models." : error.message);
  }
}

function* sseEvents(buffer) {
  let index;
  while ((index = buffer.text.indexOf("\n\n")) >= 0) {
    const block = buffer.text.slice(0, index);
    buffer.text = buffer.text.slice(index + 2);
    for (const line of block.split("\n")) if (line.startsWith("data: ")) yield line.slice(6);
  }
}

async function playgroundPage() {
  const select = $("#play-model");
  await fillModels(select);
  document.addEventListener("keys-changed", () => fillModels(select));
  const history = [];
  let controller = null;
  const send = $("#play-send"), stop = $("#play-stop");
  $("#play-clear").addEventListener("click", () => {
    history.length = 0;
    $("#play-log").replaceChildren();
    $("#play-stats").textContent = "";
  });
  stop.addEventListener("click", () => { if (controller) controller.abort(); });
  $("#play-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const prompt = $("#play-prompt").value.trim();
    if (!prompt || controller) return;
    history.push({ role: "user", content: prompt });
    $("#play-prompt").value = "";
    $("#play-log").append(el("div", { class: "turn user" }, el("span", { class: "who" }, "You"), prompt));
    const text = el("span", { class: "text" });
    const turn = el("div", { class: "turn assistant", "data-state": "streaming" },
      el("span", { class: "who" }, select.value), text);
    $("#play-log").append(turn);
    const system = $("#play-system").value.trim();
    const body = {
      model: select.value, stream: true, stream_options: { include_usage: true },
      messages: [...(system ? [{ role: "system", content: system }] : []), ...history],
      temperature: Number($("#play-temperature").value),
      top_p: Number($("#play-top-p").value),
      max_tokens: Number($("#play-max-tokens").value),
    };
    controller = new AbortController();
    send.disabled = true; stop.disabled = false;
    const started = performance.now();
    let first = null, usage = null, finish = null;
    try {
      const response = await call("/v1/chat/completions", { method: "POST", body, signal: controller.signal });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const buffer = { text: "" };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer.text += decoder.decode(value, { stream: true });
        for (const data of sseEvents(buffer)) {
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.usage) usage = chunk.usage;
          for (const choice of chunk.choices) {
            const piece = choice.delta.content || "";
            if (piece && first === null) first = performance.now();
            text.textContent += piece;
            if (choice.finish_reason) finish = choice.finish_reason;
          }
        }
      }
      history.push({ role: "assistant", content: text.textContent });
      turn.dataset.state = "done";
    } catch (error) {
      if (error.name === "AbortError") { finish = "stopped"; turn.dataset.state = "stopped"; }
      else { setStatus(error.message); turn.dataset.state = "failed"; history.pop(); }
    } finally {
      controller = null;
      send.disabled = false; stop.disabled = true;
    }
    const seconds = (performance.now() - (first ?? started)) / 1000;
    const parts = [`finish: ${finish ?? "–"}`];
    if (first !== null) parts.push(`TTFT ${Math.round(first - started)} ms`);
    if (usage) {
      parts.push(`usage: ${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
      if (usage.completion_tokens > 1 && seconds > 0) {
        parts.push(`${((usage.completion_tokens - 1) / seconds).toFixed(1)} tok/s`);
      }
    }
    $("#play-stats").textContent = parts.join(" · ");
    $("#play-stats").dataset.finish = finish ?? "";
  });
}

// -- translate ----------------------------------------------------------------------

function glossaryRow(src = "", dst = "", info = "") {
  const row = el("tr", {},
    el("td", {}, el("input", { "aria-label": "Source term", class: "g-src", value: src })),
    el("td", {}, el("input", { "aria-label": "Target term", class: "g-dst", value: dst })),
    el("td", {}, el("input", { "aria-label": "Note", class: "g-info", value: info })),
    el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": "Remove the term",
      onclick: () => row.remove() }, "×")));
  return row;
}

async function translatePage() {
  const select = $("#tr-model");
  await fillModels(select);
  document.addEventListener("keys-changed", () => fillModels(select));
  const rows = $("#tr-glossary tbody");
  rows.append(glossaryRow());
  $("#tr-add").addEventListener("click", () => rows.append(glossaryRow()));
  $("#tr-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const glossary = [...rows.querySelectorAll("tr")].map((row) => ({
      src: row.querySelector(".g-src").value.trim(),
      dst: row.querySelector(".g-dst").value.trim(),
      info: row.querySelector(".g-info").value.trim() || undefined,
    })).filter((entry) => entry.src);
    const history = $("#tr-history").value.trim();
    const body = { model: select.value, text: $("#tr-text").value,
      max_tokens: Number($("#tr-max-tokens").value), glossary,
      ...(history ? { history } : {}) };
    $("#tr-send").disabled = true;
    setStatus("");
    try {
      const answer = await (await call("/v1/translate", { method: "POST", body })).json();
      $("#tr-result").textContent = answer.translation;
      $("#tr-stats").textContent = `finish: ${answer.finish_reason} · usage: ` +
        `${answer.usage.prompt_tokens} prompt + ${answer.usage.completion_tokens} completion tokens`;
    } catch (error) { setStatus(error.message); }
    finally { $("#tr-send").disabled = false; }
  });
}

// -- logs ---------------------------------------------------------------------------

async function logsPage() {
  const body = $("#logs-table tbody");
  const filter = $("#logs-filter");
  let after = 0;
  const visible = (row) => {
    const needle = filter.value.trim().toLowerCase();
    row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
  };
  filter.addEventListener("input", () => body.querySelectorAll("tr").forEach(visible));
  document.addEventListener("keys-changed", () => { after = 0; body.replaceChildren(); });
  every(1000, async () => {
    if (!keys.admin) { setStatus("Enter the admin key above to read the logs."); return; }
    const feed = await (await call(`/ui/api/logs?after=${after}`, { admin: true })).json();
    setStatus("");
    for (const line of feed.lines) {
      const row = el("tr", { class: `level-${line.level}` },
        el("td", {}, new Date(line.time * 1000).toLocaleTimeString()),
        el("td", {}, line.level), el("td", {}, line.request_id || "–"),
        el("td", {}, line.logger), el("td", {}, line.message));
      visible(row);
      body.append(row);
    }
    while (body.rows.length > 1000) body.deleteRow(0);
    after = feed.next;
    if (feed.lines.length) window.scrollTo(0, document.body.scrollHeight);
  });
}

const PAGES = { models: modelsPage, live: livePage, playground: playgroundPage,
  translate: translatePage, logs: logsPage };

document.addEventListener("DOMContentLoaded", () => {
  setupKeys();
  PAGES[document.body.dataset.page]();
});
