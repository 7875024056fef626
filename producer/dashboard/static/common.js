// What both pages share: words and numbers as people read them, the batch's outcome badge and
// progress bar, requests to the server, and the live stream with its outage notice.

export const STATES = ["done", "failed", "cancelled", "running", "queued"];

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function plural(count, one, many = `${one}s`) {
  return `${count.toLocaleString()} ${count === 1 ? one : many}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(seconds % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

export function clock(epoch) {
  if (!epoch) return "";
  const date = new Date(epoch * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

// The batch's outcome in words, and its tone: what happened, not what was asked for.
export function outcome(batch) {
  const { failed, cancelled } = batch.counts;
  // A prefix or manifest still being listed; a batch that failed as a whole (its reason).
  if (batch.state === "expanding") return [`listing inputs · ${batch.total.toLocaleString()} found`, "live"];
  if (batch.state === "failed") return [`failed: ${batch.error}`, "warn"];
  if (!batch.finished) {
    if (batch.cancelled) return ["cancelling", "warn"];
    return batch.started_at ? ["running", "live"] : ["queued", "idle"];
  }
  const failures = failed ? ` · ${plural(failed, "failure")}` : "";
  if (cancelled) return [`cancelled · ${cancelled.toLocaleString()} not run${failures}`, "warn"];
  if (failed) return [`finished with ${plural(failed, "failure")}`, "warn"];
  return ["finished", "ok"];
}

// Rate and time left, or why there is none yet.
export function speed(batch) {
  if (batch.finished) {
    const took = batch.started_at ? duration(batch.finished_at - batch.started_at) : "";
    return took ? `took ${took}` : "";
  }
  if (!batch.started_at) return "waiting for a worker";
  if (batch.estimating) return "estimating…";
  if (!batch.rate) return "no image finished in the last minute";
  const eta = batch.eta_seconds === null ? "" : ` · about ${duration(batch.eta_seconds)} left`;
  return `${batch.rate.toFixed(2)} images/s${eta}`;
}

export function countsText(batch) {
  const parts = STATES.filter((name) => batch.counts[name] || name === "done")
    .map((name) => `${batch.counts[name].toLocaleString()} ${name}`);
  return `${parts.join(" · ")} of ${plural(batch.total, "image")}`;
}

// A progress bar with its accessible name and value; segments per state.
export function bar(batch, label) {
  const node = el("div", "bar");
  node.setAttribute("role", "progressbar");
  node.setAttribute("aria-label", label);
  node.setAttribute("aria-valuemin", "0");
  for (const name of STATES) node.append(el("span", `seg ${name}`));
  return updateBar(node, batch);
}

export function updateBar(node, batch) {
  const total = batch.total || 0;
  for (const name of STATES) {
    const value = batch.counts[name] || 0;
    node.querySelector(`.seg.${name}`).style.width = total ? `${(100 * value) / total}%` : "0";
  }
  const ended = total - batch.counts.queued - batch.counts.running;
  node.setAttribute("aria-valuemax", String(total));
  node.setAttribute("aria-valuenow", String(ended));
  node.setAttribute("aria-valuetext", `${ended.toLocaleString()} of ${plural(total, "image")} finished`);
  return node;
}

export function setBadge(node, batch) {
  const [label, tone] = outcome(batch);
  node.textContent = label;
  node.dataset.tone = tone;
}

export async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (response.status === 401) window.location.reload();  // signed out: show the key form
  if (!response.ok) throw new Error(await problem(response));
  return response.json();
}

export async function postJson(url) {
  const response = await fetch(url, { method: "POST", credentials: "same-origin" });
  if (response.status === 401) window.location.reload();
  if (!response.ok) throw new Error(await problem(response));
  return response.json();
}

async function problem(response) {
  try {
    const body = await response.json();
    return body.detail || (body.error && body.error.message) || `${response.status}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// Says something to screen readers without moving focus (a polite live region).
export function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50);
}

export function announceEnd(batch) {
  const { done, failed, cancelled } = batch.counts;
  const parts = [`${done.toLocaleString()} done`];
  if (failed) parts.push(`${failed.toLocaleString()} failed`);
  if (cancelled) parts.push(`${cancelled.toLocaleString()} cancelled`);
  announce(`Batch ${batch.batch_id} ${outcome(batch)[0]}: ${parts.join(", ")}.`);
}

export function signedIn(data) {
  const flower = document.getElementById("flower");
  flower.hidden = !data.flower_url;
  if (data.flower_url) flower.href = data.flower_url;
  document.getElementById("who").textContent =
    `${data.tenant}${data.role === "view" ? " · read-only" : ""}`;
}

// Live figures go grey with the time they are from while the stream is down.
export function outage(since) {
  const notice = document.getElementById("outage");
  const badge = document.getElementById("connection");
  document.body.classList.toggle("stale", since !== null);
  notice.hidden = since === null;
  badge.dataset.state = since === null ? "live" : "down";
  badge.textContent = since === null ? "live" : "reconnecting…";
  if (since !== null) {
    notice.textContent = `Live updates stopped at ${clock(since / 1000)}: the figures below are ` +
      "from then. Reconnecting…";
  }
}

// One EventSource and its handlers; an outage is shown from the first error until it reopens.
export function follow(url, handlers, down = null) {
  let since = down;
  const source = new EventSource(url);
  source.addEventListener("open", () => { since = null; outage(null); });
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  source.addEventListener("error", () => {
    since = since ?? Date.now();
    outage(since);
    if (source.readyState === EventSource.CLOSED) {
      // The browser gives up on an answer other than 200 (e.g. 401): check, then start over.
      source.close();
      const again = () => follow(url, handlers, since);
      setTimeout(() => getJson("dashboard/batches?limit=1").then(again, again), 3000);
    }
  });
  return source;
}
