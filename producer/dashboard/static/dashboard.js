"use strict";
// The blurq dashboard: one EventSource (the sign-in cookie authenticates it) feeds batch summaries
// that are applied to the page in place; failures and previews are fetched on demand.

const LIMIT = 100;             // batches kept on the page, like the server's snapshot
const RECENT_EVERY_MS = 2000;  // previews are refreshed at most this often
const STATES = ["done", "failed", "cancelled", "running", "queued"];

const view = {
  batches: new Map(),   // batch id -> {data, card}
  updates: 0,           // events applied since the page loaded (read by the browser test)
  recentKey: "",
  recentTimer: null,
  recentAt: 0,
  summary: null,        // the tenant's active batches and images to go (server counters)
};
window.blurqDashboard = view;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

function clock(epoch) {
  if (!epoch) return "";
  const date = new Date(epoch * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

function badge(batch) {
  // A prefix or manifest still being listed; a batch that failed as a whole (the reason).
  if (batch.state === "expanding") return [`listing inputs · ${batch.total} found`, "live"];
  if (batch.state === "failed") return [`failed: ${batch.error}`, "warn"];
  if (batch.cancelled) return [batch.finished ? "cancelled" : "cancelling", "warn"];
  if (batch.finished) return batch.counts.failed ? ["finished with failures", "warn"] : ["done", "ok"];
  return batch.started_at ? ["running", "live"] : ["queued", "idle"];
}

function paramsText(batch) {
  const parts = Object.entries(batch.params || {})
    .filter(([, value]) => value !== null && value !== "")
    .map(([name, value]) => `${name} ${value}`);
  if (batch.queue) parts.push(`queue ${batch.queue}`);
  if (batch.output) parts.push(`→ ${batch.output}`);
  return parts.join(" · ");
}

function createCard(batch) {
  const card = document.getElementById("batch-template").content.firstElementChild.cloneNode(true);
  card.dataset.batch = batch.batch_id;
  card.querySelector(".id").textContent = batch.batch_id;
  const details = card.querySelector("details");
  details.addEventListener("toggle", () => { if (details.open) loadFailures(batch.batch_id, true); });
  card.querySelector(".more").addEventListener("click", () => loadFailures(batch.batch_id, false));
  return card;
}

function render(entry) {
  const { data: batch, card } = entry;
  const total = batch.total || 0;
  for (const name of STATES) {
    const value = batch.counts[name] || 0;
    card.querySelector(`.seg.${name}`).style.width = total ? `${(100 * value) / total}%` : "0";
    const field = card.querySelector(`[data-field="${name}"]`);
    field.textContent = value;
    field.parentElement.hidden = name === "cancelled" && !value;
  }
  card.querySelector('[data-field="total"]').textContent = total;
  const bar = card.querySelector(".bar");
  bar.setAttribute("aria-valuemax", total);
  bar.setAttribute("aria-valuenow", total - batch.counts.queued - batch.counts.running);
  const rate = batch.rate ? `${batch.rate.toFixed(2)} images/s` : "";
  const eta = batch.eta_seconds === null ? "" : `ETA ${duration(batch.eta_seconds)}`;
  const took = batch.finished && batch.started_at ? `in ${duration(batch.finished_at - batch.created_at)}` : "";
  card.querySelector('[data-field="speed"]').textContent = [rate, eta, took].filter(Boolean).join(" · ");
  const [label, tone] = badge(batch);
  const tag = card.querySelector(".badge");
  tag.textContent = label;
  tag.dataset.tone = tone;
  card.dataset.finished = String(batch.finished);
  const times = [`created ${clock(batch.created_at)}`];
  if (batch.started_at) times.push(`started ${clock(batch.started_at)}`);
  if (batch.finished_at) times.push(`finished ${clock(batch.finished_at)}`);
  card.querySelector(".times").textContent = times.join(" · ");
  card.querySelector(".params").textContent = paramsText(batch);
  const details = card.querySelector("details");
  const failed = batch.counts.failed;
  details.hidden = !failed;
  const shown = card.querySelector('[data-field="failures"]');
  if (details.open && shown.textContent !== String(failed)) loadFailures(batch.batch_id, true);
  shown.textContent = failed;
}

function apply(batches) {
  const list = document.getElementById("batches");
  for (const batch of batches) {
    let entry = view.batches.get(batch.batch_id);
    if (!entry) {
      entry = { data: batch, card: createCard(batch) };
      view.batches.set(batch.batch_id, entry);
    }
    entry.data = batch;
    render(entry);
  }
  // Newest first; only cards whose position is wrong move, so open panels stay open.
  const ordered = [...view.batches.values()].sort((a, b) => b.data.created_at - a.data.created_at);
  for (const stale of ordered.splice(LIMIT)) {
    stale.card.remove();
    view.batches.delete(stale.data.batch_id);
  }
  ordered.forEach((entry, index) => {
    if (list.children[index] !== entry.card) list.insertBefore(entry.card, list.children[index] || null);
  });
  document.getElementById("no-batches").hidden = ordered.length > 0;
  totals(ordered);
  view.updates += 1;
}

function totals(entries) {
  // Counts from the server's counters (every batch of the tenant, not only those shown); the
  // rate from the batches shown, which include every running one the page keeps.
  const active = entries.filter((entry) => !entry.data.finished);
  const rate = active.reduce((sum, entry) => sum + (entry.data.rate || 0), 0);
  const summary = view.summary || { active: active.length, outstanding: 0 };
  document.getElementById("totals").textContent = summary.active
    ? `${summary.active} active · ${summary.outstanding} images to go · ${rate.toFixed(2)} images/s`
    : `${entries.length} recent batches, none active`;
}

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (response.status === 401) window.location.reload();  // signed out: show the key form
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

async function loadFailures(batchId, fromStart) {
  const entry = view.batches.get(batchId);
  if (!entry) return;
  const card = entry.card;
  const list = card.querySelector(".failure-list");
  const more = card.querySelector(".more");
  const cursor = fromStart ? 0 : Number(more.dataset.cursor || 0);
  const page = await getJson(`dashboard/batches/${encodeURIComponent(batchId)}/failures?cursor=${cursor}&count=20`);
  if (fromStart) list.replaceChildren();
  for (const image of page.images) {
    const item = el("li");
    item.append(el("code", "image", image.input || image.image), el("span", "reason", image.error || "no reason recorded"));
    list.appendChild(item);
  }
  more.hidden = page.next === null;
  more.dataset.cursor = page.next ?? "";
}

function scheduleRecent() {
  if (view.recentTimer) return;
  const wait = Math.max(0, view.recentAt + RECENT_EVERY_MS - Date.now());
  view.recentTimer = setTimeout(async () => {
    view.recentTimer = null;
    view.recentAt = Date.now();
    try {
      renderRecent((await getJson("dashboard/recent?count=8")).images);
    } catch (error) {
      console.warn(error);
    }
  }, wait);
}

function renderRecent(images) {
  const key = images.map((image) => `${image.batch}/${image.image}`).join(",");
  if (key === view.recentKey) return;  // unchanged: keep the loaded thumbnails
  view.recentKey = key;
  const grid = document.getElementById("recent");
  if (!images.length) {
    grid.replaceChildren(el("p", "empty", "No finished image yet."));
    return;
  }
  grid.replaceChildren(...images.map((image) => {
    const figure = el("figure", "pair");
    const before = el("img");
    before.src = image.input_thumbnail;
    before.alt = `before: ${image.input}`;
    const after = el("img");
    after.src = image.output_thumbnail;
    after.alt = `after: ${image.output}`;
    figure.append(before, after, el("figcaption", "", `${image.batch} · ${image.input.split("/").pop()}`));
    figure.title = `${image.input}\n→ ${image.output}`;
    return figure;
  }));
}

function connection(stateName, text) {
  const badgeNode = document.getElementById("connection");
  badgeNode.dataset.state = stateName;
  badgeNode.textContent = text;
}

function connect() {
  const source = new EventSource("dashboard/events");
  source.addEventListener("open", () => connection("live", "live"));
  source.addEventListener("snapshot", (event) => {
    const data = JSON.parse(event.data);
    const flower = document.getElementById("flower");
    flower.hidden = !data.flower_url;
    if (data.flower_url) flower.href = data.flower_url;
    document.getElementById("who").textContent =
      `${data.tenant}${data.role === "view" ? " · read-only" : ""}`;
    view.summary = data.summary;
    apply(data.batches);
    scheduleRecent();
  });
  source.addEventListener("batches", (event) => {
    const data = JSON.parse(event.data);
    view.summary = data.summary;
    apply(data.batches);
    if (data.outputs) scheduleRecent();
  });
  source.addEventListener("heartbeat", (event) => {
    const data = JSON.parse(event.data);
    view.summary = data.summary;
    apply(data.batches);
  });
  source.addEventListener("error", () => {
    connection("down", "reconnecting…");
    if (source.readyState === EventSource.CLOSED) {
      // The browser gives up on an answer other than 200 (e.g. 401): check, then start over.
      setTimeout(() => getJson("dashboard/batches?limit=1").then(connect, connect), 3000);
    }
  });
}

connect();
