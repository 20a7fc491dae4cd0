// The jobs panel: the site's recent jobs as a live table, a job's history, cancelling.

import { sitePath } from "./api.js";
import { clock, dateTime, onZoneChange } from "./time.js";

const FINAL = new Set(["COMPLETE", "FAILED", "CANCELLED", "EXPIRED"]);
const KNOWN = new Set(["UNREAD", "RECEIVED", ...FINAL]);
const MAX_ROWS = 200;

export function statusClass(status) {
  return KNOWN.has(status) ? `st-${status}` : "st-active";
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function paramsText(job) {
  const all = { ...job.required_params, ...job.optional_params };
  return Object.entries(all).map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(" ");
}

function queueState(status, seconds, atMs) {
  return { status, seconds, at: atMs };
}

// A job from the native API or stream.
export function jobFromApi(data) {
  return {
    ulid: data.ulid,
    created_ms: data.created_ms,
    device: data.device,
    instance: data.instance,
    action: data.action,
    required_params: data.required_params,
    optional_params: data.optional_params,
    user: data.user.name,
    primary: queueState(data.primary.status, data.primary.seconds_until_complete, data.primary.updated_ms),
    alternate: queueState(data.alternate.status, data.alternate.seconds_until_complete, data.alternate.updated_ms),
  };
}

// Seconds until complete as reported, counted down since the report; null if unknown.
function secondsLeft(state) {
  if (state.seconds < 0 || FINAL.has(state.status)) return null;
  return Math.max(0, Math.round(state.seconds - (Date.now() - state.at) / 1000));
}

function statusCell(status) {
  return el("span", { className: `status ${statusClass(status)}`, textContent: status });
}

function historyRow(entry) {
  const seconds = entry.seconds_until_complete;
  return el(
    "tr",
    {},
    el("td", { className: "time", textContent: clock(entry.at_ms), title: dateTime(entry.at_ms) }),
    el("td", { textContent: entry.queue }),
    el("td", {}, statusCell(entry.status)),
    el("td", { className: "num", textContent: seconds < 0 ? "" : `${seconds} s` }),
    el("td", { textContent: entry.source }),
  );
}

// The history, with each run of the same report repeated (EXPOSING 900 s, 899 s, ...)
// folded into its first row and a button that shows the rest.
function historyRows(history) {
  const rows = [];
  let start = 0;
  while (start < history.length) {
    let end = start + 1;
    const same = (entry) => entry.queue === history[start].queue && entry.status === history[start].status;
    while (end < history.length && same(history[end])) end += 1;
    const run = history.slice(start, end).map(historyRow);
    if (run.length > 2) {
      const folded = run.slice(1);
      for (const row of folded) {
        row.hidden = true;
        row.classList.add("folded");
      }
      const last = history[end - 1];
      const toggle = el("button", {
        type: "button",
        className: "quiet fold",
        textContent: `+${folded.length} more, to ${last.seconds_until_complete < 0 ? "" : `${last.seconds_until_complete} s at `}${clock(last.at_ms)}`,
      });
      toggle.addEventListener("click", (event) => {
        event.preventDefault();
        const open = folded[0].hidden;
        for (const row of folded) row.hidden = !open;
        toggle.textContent = open ? "fold" : `+${folded.length} more`;
      });
      run[0].lastElementChild.append(" ", toggle);
    }
    rows.push(...run);
    start = end;
  }
  return rows;
}

export class JobsPanel {
  constructor(api, toast) {
    this.api = api;
    this.toast = toast;
    this.site = null;
    this.jobs = new Map();
    this.rows = new Map();
    this.body = document.querySelector("#jobs tbody");
    this.empty = document.getElementById("jobs-empty");
    this.dialog = document.getElementById("job-dialog");
    this.openUlid = null;
    // While the server is away the countdowns stop: what they count is not known.
    this.frozen = false;
    // The site's jobs that need a person's eye (from its presence): ulid -> flag.
    this.flags = new Map();
    this.dialog.addEventListener("close", () => { this.openUlid = null; });
    document.getElementById("cancel-all").addEventListener("click", () => this.cancelAll());
    setInterval(() => this.tick(), 1000);
    onZoneChange(() => this.redraw());
  }

  redraw() {
    for (const job of this.jobs.values()) this.upsert(job, false);
  }

  // `overdue` and `abandoned`: ULIDs, as the site's presence lists them.
  flag(overdue, abandoned) {
    const flags = new Map([...overdue.map((ulid) => [ulid, "overdue"]), ...abandoned.map((ulid) => [ulid, "abandoned"])]);
    const changed = flags.size !== this.flags.size || [...flags].some(([ulid, flag]) => this.flags.get(ulid) !== flag);
    this.flags = flags;
    if (changed) this.redraw();
  }

  async load(site) {
    this.site = site;
    this.jobs.clear();
    this.rows.clear();
    this.body.replaceChildren();
    const page = await this.api.get(`${sitePath(site, "/jobs")}?order=newest&limit=${MAX_ROWS}`);
    if (site !== this.site) return;
    for (const data of page.jobs.reverse()) this.upsert(jobFromApi(data), false);
    this.showEmpty();
  }

  // A new or changed job (from the stream): its row is replaced or added on top.
  upsert(job, fresh = true) {
    this.jobs.set(job.ulid, job);
    const row = this.renderRow(job);
    const old = this.rows.get(job.ulid);
    if (old) {
      old.replaceWith(row);
    } else {
      this.insertInOrder(row, job.ulid);
    }
    this.rows.set(job.ulid, row);
    if (fresh) row.classList.add("fresh");
    while (this.rows.size > MAX_ROWS) {
      const oldest = [...this.rows.keys()].sort()[0];
      this.rows.get(oldest).remove();
      this.rows.delete(oldest);
      this.jobs.delete(oldest);
    }
    this.showEmpty();
    if (this.openUlid === job.ulid) this.showDetail(job.ulid);
  }

  insertInOrder(row, ulid) {
    // Newest first: before the first row with an older ULID.
    for (const existing of this.body.children) {
      if (existing.dataset.ulid < ulid) {
        existing.before(row);
        return;
      }
    }
    this.body.append(row);
  }

  showEmpty() {
    this.empty.hidden = this.rows.size > 0;
  }

  renderRow(job) {
    const left = secondsLeft(job.primary);
    const cancel = el("td");
    if (job.primary.status === "UNREAD" && job.alternate.status === "UNREAD") {
      const button = el("button", { type: "button", className: "quiet cancel", textContent: "Cancel" });
      button.addEventListener("click", (event) => {
        event.stopPropagation();
        this.cancel(job.ulid, button);
      });
      cancel.append(button);
    }
    const row = el(
      "tr",
      {},
      el("td", { className: "time", textContent: clock(job.created_ms), title: dateTime(job.created_ms) }),
      // A zero-width space: a narrow screen breaks the line after the slash.
      el("td", { textContent: `${job.device}/\u200b${job.instance}` }),
      el("td", { textContent: job.action }),
      el("td", { className: "params", textContent: paramsText(job) }),
      el("td", { textContent: job.user }),
      el("td", { className: "primary-status" }, statusCell(job.primary.status), ...this.flagCell(job.ulid)),
      el("td", { className: "alternate-status" }, statusCell(job.alternate.status)),
      el("td", { className: "num left", textContent: left === null ? "" : `${left} s` }),
      cancel,
    );
    row.dataset.ulid = job.ulid;
    row.dataset.status = job.primary.status;
    row.addEventListener("click", () => this.showDetail(job.ulid));
    return row;
  }

  flagCell(ulid) {
    const flag = this.flags.get(ulid);
    if (!flag) return [];
    const title = flag === "overdue"
      ? "Past the site's own estimate with no report: never sent again by itself; look at the site."
      : "Received and never reported on: never sent again by itself; look at the site.";
    return [" ", el("span", { className: `flag flag-${flag}`, textContent: flag, title })];
  }

  tick() {
    if (this.frozen) return;
    for (const [ulid, row] of this.rows) {
      const left = secondsLeft(this.jobs.get(ulid).primary);
      row.querySelector(".left").textContent = left === null ? "" : `${left} s`;
    }
  }

  async cancel(ulid, button) {
    button.disabled = true;
    try {
      this.upsert(jobFromApi(await this.api.post(`/api/v1/jobs/${ulid}/cancel`)));
    } catch (error) {
      button.disabled = false;
      this.toast(error.message, "bad");
    }
  }

  async cancelAll() {
    if (!this.site) return;
    if (!window.confirm(`Cancel every open job at ${this.site}? The site is told to stop.`)) return;
    try {
      await this.api.post(sitePath(this.site, "/jobs"), {
        device: "all",
        instance: "all",
        action: "cancel_all_commands",
        required_params: {},
        optional_params: {},
      });
      this.toast(`Cancel all sent to ${this.site}.`, "ok");
    } catch (error) {
      this.toast(error.message, "bad");
    }
  }

  async showDetail(ulid) {
    this.openUlid = ulid;
    let data;
    try {
      data = await this.api.get(`/api/v1/jobs/${ulid}`);
    } catch (error) {
      this.toast(error.message, "bad");
      return;
    }
    if (this.openUlid !== ulid) return;
    document.getElementById("job-dialog-title").textContent = `${data.device}/${data.instance} ${data.action}`;
    const fields = [
      ["ULID", data.ulid],
      ["Site", data.site],
      ["Created", dateTime(data.created_ms)],
      ["User", data.user.name],
      ["Required", JSON.stringify(data.required_params)],
      ["Optional", JSON.stringify(data.optional_params)],
      ["Status", data.primary.status],
      ["Alternate", data.alternate.status],
    ];
    document.getElementById("job-dialog-fields").replaceChildren(
      ...fields.flatMap(([name, value]) => [el("dt", { textContent: name }), el("dd", { textContent: value })]),
    );
    document.querySelector("#job-history tbody").replaceChildren(...historyRows(data.history));
    if (!this.dialog.open) this.dialog.showModal();
  }
}
