// The overview: fleet cards (polled) and the table of batches (paged, filtered, kept live by
// the event stream: rows on the page change in place; a new batch reloads the first page).
import {
  announceEnd, bar, clock, countsText, el, follow, getJson, plural, setBadge, signedIn, speed,
  updateBar,
} from "./common.js";

const PAGE = 25;
const FLEET_EVERY_MS = 5000;
const view = {
  offsets: [0],        // where each page seen so far starts: Newer goes back one
  next: null,          // where the following page starts, or null at the end
  rows: new Map(),     // batch id -> {data, row}
  finished: new Set(), // batches seen finished: a batch that ends is announced once
  reload: null,
};

function query() {
  const state = document.getElementById("state").value;
  const text = document.getElementById("search").value.trim();
  const offset = view.offsets[view.offsets.length - 1];
  const params = new URLSearchParams({ offset, limit: PAGE });
  if (state) params.set("state", state);
  if (text) params.set("q", text);
  return [params, !state && !text && offset === 0];
}

async function load() {
  const [params] = query();
  const page = await getJson(`dashboard/batches?${params}`);
  const body = document.getElementById("batch-rows");
  view.rows.clear();
  body.replaceChildren(...page.batches.map((batch) => {
    const row = createRow(batch);
    view.rows.set(batch.batch_id, { data: batch, row });
    if (batch.finished) view.finished.add(batch.batch_id);
    return row;
  }));
  view.next = page.next_offset;
  document.getElementById("no-batches").hidden = page.batches.length > 0;
  document.getElementById("newer").disabled = view.offsets.length === 1;
  document.getElementById("older").disabled = view.next === null;
  const first = view.offsets[view.offsets.length - 1];
  document.getElementById("page-label").textContent = page.batches.length
    ? `${plural(page.batches.length, "batch", "batches")} from number ${first + 1}` : "";
}

function cell(row, label, ...children) {
  const td = el("td");
  td.dataset.label = label;
  td.append(...children);
  row.append(td);
  return td;
}

function createRow(batch) {
  const row = el("tr");
  row.dataset.batch = batch.batch_id;
  const link = el("a", "id", batch.batch_id);
  link.href = `batches/${encodeURIComponent(batch.batch_id)}`;
  const name = el("th");
  name.scope = "row";
  name.append(link);
  row.append(name);
  cell(row, "Outcome", el("span", "badge"));
  cell(row, "Progress", bar(batch, `Progress of batch ${batch.batch_id}`), el("span", "counts live"));
  cell(row, "Rate", el("span", "speed live"));
  cell(row, "Review", el("span", "review"));
  cell(row, "Created", el("span", "created", clock(batch.created_at)));
  render(row, batch);
  return row;
}

function render(row, batch) {
  setBadge(row.querySelector(".badge"), batch);
  updateBar(row.querySelector(".bar"), batch);
  row.querySelector(".counts").textContent = countsText(batch);
  row.querySelector(".speed").textContent = speed(batch);
  row.querySelector(".review").textContent = batch.review ? plural(batch.review, "image") : "none";
  row.dataset.finished = String(batch.finished);
}

function apply(batches) {
  let unseen = false;  // a batch newer than every row: the first page shows it after a reload
  const newest = Math.max(0, ...[...view.rows.values()].map((entry) => entry.data.created_at));
  for (const batch of batches) {
    const entry = view.rows.get(batch.batch_id);
    if (batch.finished && !view.finished.has(batch.batch_id)) {
      view.finished.add(batch.batch_id);
      announceEnd(batch);
    }
    if (entry) {
      entry.data = batch;
      render(entry.row, batch);
    } else if (batch.created_at > newest) {
      unseen = true;
    }
  }
  const [, firstPage] = query();
  if (unseen && firstPage && !view.reload) {
    view.reload = setTimeout(() => { view.reload = null; load().catch(console.warn); }, 1000);
  }
}

function chart(minutes) {
  const svg = document.getElementById("chart");
  const top = Math.max(1, ...minutes.map((m) => m.done + m.failed));
  const ns = "http://www.w3.org/2000/svg";
  const bars = [];
  minutes.forEach((minute, index) => {
    for (const [name, value, base] of [["done", minute.done, 0], ["failed", minute.failed, minute.done]]) {
      if (!value) continue;
      const rect = document.createElementNS(ns, "rect");
      const height = (40 * value) / top;
      rect.setAttribute("class", name);
      rect.setAttribute("x", String(index * 4));
      rect.setAttribute("width", "3");
      rect.setAttribute("y", String(40 - (40 * base) / top - height));
      rect.setAttribute("height", String(height));
      bars.push(rect);
    }
  });
  svg.replaceChildren(...bars);
}

function fleet(data) {
  const waiting = Object.values(data.queues).reduce((sum, count) => sum + count, 0);
  document.getElementById("queue-total").textContent = waiting.toLocaleString();
  document.getElementById("queue-lanes").textContent = Object.entries(data.queues)
    .map(([lane, count]) => `${lane} ${count.toLocaleString()}`).join(" · ");
  document.getElementById("workers-online").textContent = data.workers_online;
  document.getElementById("workers-busy").textContent = data.workers_busy;
  document.getElementById("workers-note").textContent = data.watching ? "" : "listening for heartbeats…";
  const total = data.done_last_hour + data.failed_last_hour;
  const busiest = Math.max(0, ...data.minutes.map((m) => m.done + m.failed));
  chart(data.minutes);
  document.getElementById("chart-text").textContent =
    `${plural(total, "image")} in the last hour, at most ${busiest.toLocaleString()} in one minute`;
  document.getElementById("failure-rate").textContent =
    data.failure_rate === null ? "–" : `${(100 * data.failure_rate).toFixed(1)} %`;
  document.getElementById("failure-detail").textContent =
    `${plural(data.failed_last_hour, "failure")} of ${plural(total, "image")}`;
}

async function pollFleet() {
  const cards = document.getElementById("fleet");
  try {
    fleet(await getJson("dashboard/fleet"));
    cards.classList.remove("stale-cards");
  } catch (error) {
    cards.classList.add("stale-cards");
    console.warn(error);
  }
  setTimeout(pollFleet, FLEET_EVERY_MS);
}

function wire() {
  const again = () => { view.offsets = [0]; load().catch(console.warn); };
  document.getElementById("state").addEventListener("change", again);
  let typing = null;
  document.getElementById("search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(again, 300);
  });
  document.getElementById("filters").addEventListener("submit", (event) => { event.preventDefault(); again(); });
  document.getElementById("older").addEventListener("click", () => {
    view.offsets.push(view.next);
    load().catch(console.warn);
  });
  document.getElementById("newer").addEventListener("click", () => {
    view.offsets.pop();
    load().catch(console.warn);
  });
}

wire();
follow(`dashboard/events?limit=${PAGE}`, {
  snapshot: (data) => { signedIn(data); load().catch(console.warn); },
  batches: (data) => apply(data.batches),
  heartbeat: (data) => apply(data.batches),
});
pollFleet();
