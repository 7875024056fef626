// The batch page: the batch live from its own event stream, its actions (cancel, retry,
// downloads), its failures by reason and a table of its images (paged, filtered, searched),
// each image opening in the before/after viewer.
import {
  announceEnd, bar, clock, countsText, el, follow, getJson, plural, postJson, setBadge, signedIn,
  speed, updateBar,
} from "./common.js";
import { openViewer } from "./viewer.js";

const PAGE = 50;
const REFRESH_MS = 2000;  // the image table and reasons follow the batch at most this often
const STAGES = ["get", "decode", "matting", "foreground", "bokeh", "encode", "put"];
const batchId = decodeURIComponent(window.location.pathname.split("/").pop());
const base = `dashboard/batches/${encodeURIComponent(batchId)}`;
const view = {
  batch: null, role: "view", offsets: [0], next: null, images: [],
  refresh: null, refreshAt: 0, failedShown: -1,
};

function render(batch) {
  const first = view.batch === null;
  const ended = view.batch && !view.batch.finished && batch.finished;
  view.batch = batch;
  document.title = `blurq · ${batch.batch_id}`;
  document.getElementById("batch-id").textContent = batch.batch_id;
  setBadge(document.getElementById("badge"), batch);
  const slot = document.getElementById("bar-slot");
  if (first) slot.replaceChildren(bar(batch, `Progress of batch ${batch.batch_id}`));
  updateBar(slot.firstElementChild, batch);
  document.getElementById("counts").textContent = countsText(batch);
  // The figures as data too, for scripts that read the page (the browser test does).
  Object.assign(document.getElementById("summary").dataset, { ...batch.counts, finished: batch.finished });
  const review = batch.review ? ` · ${plural(batch.review, "image")} to review` : "";
  document.getElementById("speed").textContent = speed(batch) + review;
  const times = [`created ${clock(batch.created_at)}`];
  if (batch.started_at) times.push(`started ${clock(batch.started_at)}`);
  if (batch.finished_at) times.push(`finished ${clock(batch.finished_at)}`);
  document.getElementById("times").textContent = times.join(" · ");
  actions(batch);
  if (first) params(batch);
  if (ended) announceEnd(batch);
}

function params(batch) {
  const list = document.getElementById("params");
  const shown = { ...batch.params, queue: batch.queue, output: batch.output };
  list.replaceChildren(...Object.entries(shown)
    .filter(([, value]) => value !== null && value !== "")
    .map(([name, value]) => {
      const pair = el("div", "pair");
      pair.append(el("dt", "", name.replaceAll("_", " ")), el("dd", "", String(value)));
      return pair;
    }));
}

function actions(batch) {
  const reader = view.role !== "submit";
  const cancel = document.getElementById("cancel");
  const retry = document.getElementById("retry");
  cancel.disabled = reader || batch.finished;
  retry.disabled = reader || !batch.counts.failed || batch.cancelled;
  retry.textContent = batch.counts.failed
    ? `Retry ${plural(batch.counts.failed, "failed image")}` : "Retry failed images";
  const why = reader ? "Your key may only read: cancel and retry need a submit key." : "";
  for (const button of [cancel, retry]) button.title = why;
  document.getElementById("download-failures").hidden = !batch.counts.failed;
}

async function act(kind) {
  const batch = view.batch;
  const question = kind === "cancel"
    ? `Cancel batch ${batch.batch_id}? ${plural(batch.counts.queued, "queued image")} will not run; running ones finish.`
    : `Send the ${plural(batch.counts.failed, "failed image")} of ${batch.batch_id} again?`;
  if (!window.confirm(question)) return;
  const note = document.getElementById("action-note");
  try {
    const after = await postJson(`${base}/${kind}`);  // the batch, and for a retry "retried"
    note.textContent = kind === "cancel"
      ? `Cancelled: ${plural(after.counts.cancelled, "image")} will not run.`
      : `${plural(after.retried, "image")} sent again.`;
    render(after);
    scheduleRefresh(true);
  } catch (error) {
    note.textContent = `Could not ${kind}: ${error.message}`;
  }
}

function imageQuery() {
  const params = new URLSearchParams({ offset: view.offsets[view.offsets.length - 1], limit: PAGE });
  const state = document.getElementById("image-state").value;
  const text = document.getElementById("image-search").value.trim();
  if (state) params.set("state", state);
  if (document.getElementById("review-only").checked) params.set("review", "true");
  if (text) params.set("q", text);
  return params;
}

// An S3 key with a break opportunity after each slash, so a long one wraps between its parts.
function keyNode(key) {
  const code = el("code", "key");
  key.split("/").forEach((part, index, parts) => {
    code.append(part + (index < parts.length - 1 ? "/" : ""));
    if (index < parts.length - 1) code.append(el("wbr"));
  });
  return code;
}

function stageText(image) {
  const parts = STAGES.filter((name) => name in image.timings)
    .map((name) => `${name} ${image.timings[name].toFixed(2)}`);
  if (!parts.length) return image.state === "running" ? `in ${image.stage || "queue"}` : "–";
  return `${parts.join(" · ")} (total ${image.seconds.toFixed(2)})`;
}

function resultCell(image) {
  const cell = el("td", "result");
  cell.dataset.label = "Result";
  if (image.state === "failed") {
    cell.append(el("span", "reason", image.error || "no reason recorded"));
  } else if (image.output) {
    cell.append(keyNode(image.output.split("/").slice(3).join("/")));
  }
  const notes = [];
  if (image.confidence !== null) notes.push(`confidence ${image.confidence.toFixed(2)}`);
  if (image.review) notes.push("needs review");
  if (image.retried) notes.push(`retried ${image.retried}×`);
  if (notes.length) cell.append(el("span", "note", notes.join(" · ")));
  return cell;
}

function imageRow(image, index) {
  const row = el("tr");
  row.dataset.image = image.image_id;
  row.dataset.state = image.state;
  const input = el("th", "input");
  input.scope = "row";
  input.append(keyNode(image.key));
  const state = el("td", "", image.state);
  state.dataset.label = "State";
  const stages = el("td", "stages", stageText(image));
  stages.dataset.label = "Seconds";
  const open = el("button", "open", "View");
  open.type = "button";
  open.setAttribute("aria-label", `View ${image.key}`);
  open.addEventListener("click", () => openViewer(view.images, index, open));
  const action = el("td", "view");
  action.append(open);
  row.append(input, state, stages, resultCell(image), action);
  return row;
}

async function loadImages() {
  const page = await getJson(`${base}/images?${imageQuery()}`);
  view.images = page.images;
  view.next = page.next_offset;
  document.getElementById("image-rows").replaceChildren(...page.images.map(imageRow));
  document.getElementById("no-images").hidden = page.images.length > 0;
  document.getElementById("first-images").disabled = view.offsets.length === 1;
  document.getElementById("next-images").disabled = view.next === null;
  const from = view.offsets[view.offsets.length - 1];
  document.getElementById("image-range").textContent = page.images.length
    ? `${plural(page.images.length, "image")} from position ${(from + 1).toLocaleString()}` : "";
}

async function loadReasons() {
  const found = await getJson(`${base}/reasons`);
  document.getElementById("reasons-section").hidden = found.failed === 0;
  document.getElementById("reasons-note").textContent =
    `${plural(found.failed, "failure")}, ${plural(found.reasons.length, "reason")}` +
    (found.complete ? "" : " (from the first part of the batch)");
  document.getElementById("reasons").replaceChildren(...found.reasons.map((group) => {
    const item = el("li");
    const details = el("details");
    const summary = el("summary");
    summary.append(el("b", "count", group.count.toLocaleString()), " ", el("span", "reason", group.reason));
    const inputs = el("ul", "inputs");
    inputs.append(...group.images.map((image) => {
      const line = el("li");
      line.append(keyNode(image.input.split("/").slice(3).join("/")));
      return line;
    }));
    details.append(summary, el("p", "example", group.example), inputs);
    item.append(details);
    return item;
  }));
}

// The table follows the batch, but never under the reader's focus: it waits until focus leaves.
function scheduleRefresh(now = false) {
  if (view.refresh) return;
  const wait = now ? 0 : Math.max(0, view.refreshAt + REFRESH_MS - Date.now());
  view.refresh = setTimeout(async () => {
    view.refresh = null;
    if (document.getElementById("image-rows").contains(document.activeElement)) return;
    view.refreshAt = Date.now();
    try {
      await loadImages();
      if (view.batch.counts.failed !== view.failedShown) {
        view.failedShown = view.batch.counts.failed;
        await loadReasons();
      }
    } catch (error) {
      console.warn(error);
    }
  }, wait);
}

function changed(data) {
  const batch = data.batches.find((found) => found.batch_id === batchId);
  if (!batch) return;
  const before = view.batch && JSON.stringify(view.batch.counts);
  render(batch);
  if (JSON.stringify(batch.counts) !== before) scheduleRefresh();  // not for a heartbeat's rate
}

function start(data) {
  signedIn(data);
  view.role = data.role;
  const batch = data.batches[0];
  if (!batch) {
    const missing = document.getElementById("missing");
    missing.textContent = `No batch ${batchId} (never submitted, or expired).`;
    missing.hidden = false;
    return;
  }
  document.getElementById("summary").hidden = false;
  document.getElementById("images-section").hidden = false;
  render(batch);
  scheduleRefresh(true);
}

function wire() {
  document.getElementById("cancel").addEventListener("click", () => act("cancel"));
  document.getElementById("retry").addEventListener("click", () => act("retry"));
  for (const [id, query] of [["download-csv", "format=csv"], ["download-jsonl", "format=jsonl"],
    ["download-failures", "format=csv&state=failed"]]) {
    document.getElementById(id).href = `${base}/manifest?${query}`;
  }
  const again = () => { view.offsets = [0]; loadImages().catch(console.warn); };
  for (const id of ["image-state", "review-only"]) document.getElementById(id).addEventListener("change", again);
  let typing = null;
  document.getElementById("image-search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(again, 300);
  });
  document.getElementById("image-filters").addEventListener("submit", (event) => { event.preventDefault(); again(); });
  document.getElementById("next-images").addEventListener("click", () => {
    view.offsets.push(view.next);
    loadImages().catch(console.warn);
  });
  document.getElementById("first-images").addEventListener("click", again);
  document.getElementById("image-rows").addEventListener("focusout", () => scheduleRefresh());
}

wire();
follow(`dashboard/events?batch=${encodeURIComponent(batchId)}`, {
  snapshot: start,
  batches: changed,
  heartbeat: changed,
});
