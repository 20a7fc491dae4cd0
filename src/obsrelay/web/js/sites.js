// The network at a glance: the overview of every site (offline ones on top, as the API
// orders them), and the open site's presence: online or offline since when, its
// overdue and abandoned jobs. Both are read from /api/v1/sites every few seconds, and
// at once when the stream says a site went offline or came back.

import { sitePath } from "./api.js";
import { ago, since } from "./time.js";

const REFRESH_MS = 5000;

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function held(view) {
  const { received, running } = view.jobs;
  return received + running;
}

function attention(view) {
  const { overdue, abandoned } = view.jobs;
  return [
    overdue.length ? `${overdue.length} overdue` : "",
    abandoned.length ? `${abandoned.length} abandoned` : "",
  ].filter(Boolean).join(", ");
}

function stateCell(view) {
  return el("span", {
    className: `presence ${view.online ? "is-online" : "is-offline"}`,
    textContent: view.online ? "online" : "OFFLINE",
  });
}

export class SitesOverview {
  // onOpen(site) when a site is clicked.
  constructor(api, toast, onOpen) {
    this.api = api;
    this.toast = toast;
    this.onOpen = onOpen;
    this.section = document.getElementById("overview");
    this.body = document.querySelector("#sites tbody");
    this.empty = document.getElementById("sites-empty");
    this.timer = null;
    this.views = [];
  }

  show() {
    this.section.hidden = false;
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  hide() {
    this.section.hidden = true;
    clearInterval(this.timer);
    this.timer = null;
  }

  async refresh() {
    try {
      this.views = (await this.api.get("/api/v1/sites")).sites;
    } catch (error) {
      this.toast(error.message, "bad");
      return;
    }
    this.render();
  }

  render() {
    this.empty.hidden = this.views.length > 0;
    this.body.replaceChildren(...this.views.map((view) => this.row(view)));
  }

  row(view) {
    const message = view.last_message;
    const name = el("a", { href: `?site=${encodeURIComponent(view.site)}`, textContent: view.site });
    const row = el(
      "tr",
      { className: view.online ? "" : "offline-row" },
      el("td", { className: "site-name" }, name),
      el("td", {}, stateCell(view)),
      el("td", { className: "time", textContent: since(view.since_ms) }),
      el("td", { className: "time", textContent: ago(view.last_seen_ms) }),
      el("td", { className: "num", textContent: String(view.jobs.unread) }),
      el("td", { className: "num", textContent: String(held(view)) }),
      el("td", { className: "attention", textContent: attention(view) }),
      el("td", { className: message ? `lv-${message.level}` : "" },
        message ? el("span", { className: "m-level", textContent: message.level }) : "",
        message ? ` ${ago(message.timestamp * 1000)}` : ""),
    );
    row.dataset.site = view.site;
    row.addEventListener("click", (event) => {
      event.preventDefault();
      this.onOpen(view.site);
    });
    return row;
  }
}

export class SitePresence {
  // onView(view) after each read of the open site.
  constructor(api, onView) {
    this.api = api;
    this.onView = onView;
    this.banner = document.getElementById("presence");
    this.site = null;
    this.view = null;
    this.timer = null;
  }

  follow(site) {
    this.site = site;
    this.view = null;
    this.banner.hidden = true;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    return this.refresh();
  }

  stop() {
    clearInterval(this.timer);
    this.site = null;
    this.banner.hidden = true;
  }

  get offline() {
    return this.view !== null && !this.view.online;
  }

  async refresh() {
    const site = this.site;
    if (!site) return;
    let view;
    try {
      view = await this.api.get(sitePath(site, ""));
    } catch {
      return; // the connection banner says the server is away
    }
    if (site !== this.site) return;
    this.view = view;
    this.render();
    this.onView(view);
  }

  render() {
    const view = this.view;
    if (!view) return;
    this.banner.hidden = false;
    this.banner.dataset.state = view.online ? "online" : "offline";
    const flagged = attention(view);
    this.banner.replaceChildren(
      el("strong", {
        textContent: view.online
          ? `${view.site} is online`
          : `${view.site} is offline since ${since(view.since_ms)}`,
      }),
      el("span", { textContent: ` · last call ${ago(view.last_seen_ms)}` }),
      flagged ? el("span", { className: "attention", textContent: ` · ${flagged}` }) : "",
    );
  }
}
