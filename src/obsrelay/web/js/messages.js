// The messages panel: the site's user status stream, live, with a level filter, a
// search, and auto-scroll that pauses while the operator reads further up.

import { sitePath } from "./api.js";
import { clock, dateTime, onZoneChange } from "./time.js";

const LEVELS = ["debug", "info", "warning", "error", "critical"];
const MAX_LINES = 2000;
const LOOK_BACK_SECONDS = 24 * 3600;
const MAX_PAGES = 5;

function rank(level) {
  const found = LEVELS.indexOf(level);
  return found < 0 ? 1 : found;
}


export class MessagesPanel {
  constructor(api, toast) {
    this.api = api;
    this.toast = toast;
    this.site = null;
    this.list = document.getElementById("messages");
    this.newButton = document.getElementById("new-messages");
    this.levelFilter = document.getElementById("level-filter");
    this.search = document.getElementById("message-search");
    this.seen = new Set();
    this.unseen = 0;
    this.following = true;
    this.list.addEventListener("scroll", () => this.onScroll());
    this.newButton.addEventListener("click", () => this.jumpToEnd());
    this.levelFilter.addEventListener("change", () => this.applyFilter());
    this.search.addEventListener("input", () => this.applyFilter());
    onZoneChange(() => {
      for (const time of this.list.querySelectorAll(".m-time")) this.writeTime(time);
    });
  }

  writeTime(time) {
    const ms = Number(time.dataset.ms);
    time.textContent = clock(ms);
    time.title = dateTime(ms);
  }

  async load(site) {
    this.site = site;
    this.list.replaceChildren();
    this.seen.clear();
    this.unseen = 0;
    this.following = true;
    this.newButton.hidden = true;
    const since = Date.now() / 1000 - LOOK_BACK_SECONDS;
    let after = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const query = new URLSearchParams({ since: String(since), limit: "1000" });
      if (after) query.set("after", after);
      const found = await this.api.get(`${sitePath(site, "/messages")}?${query}`);
      if (site !== this.site) return;
      for (const message of found.messages) this.add(message);
      after = found.next_after;
      if (!after) break;
    }
    this.jumpToEnd();
  }

  // A message from the list or the stream; one seen already (by its id) is ignored.
  add({ ulid, message: text, level, timestamp }) {
    if (this.seen.has(ulid)) return;
    this.seen.add(ulid);
    const line = document.createElement("li");
    line.className = `lv-${LEVELS.includes(level) ? level : "info"}`;
    line.dataset.level = level;
    const time = Object.assign(document.createElement("span"), { className: "m-time" });
    time.dataset.ms = String(timestamp * 1000);
    this.writeTime(time);
    const badge = Object.assign(document.createElement("span"), { className: "m-level", textContent: level });
    const body = Object.assign(document.createElement("span"), { className: "m-text", textContent: text });
    line.append(time, badge, body);
    line.hidden = !this.matches(line);
    this.list.append(line);
    while (this.list.children.length > MAX_LINES) this.list.firstElementChild.remove();
    if (this.following) {
      this.list.scrollTop = this.list.scrollHeight;
    } else if (!line.hidden) {
      this.unseen += 1;
      this.newButton.textContent = `${this.unseen} new message${this.unseen === 1 ? "" : "s"} ↓`;
      this.newButton.hidden = false;
    }
  }

  matches(line) {
    const wanted = this.search.value.trim().toLowerCase();
    return rank(line.dataset.level) >= rank(this.levelFilter.value) &&
      (!wanted || line.textContent.toLowerCase().includes(wanted));
  }

  applyFilter() {
    for (const line of this.list.children) line.hidden = !this.matches(line);
    if (this.following) this.list.scrollTop = this.list.scrollHeight;
  }

  onScroll() {
    const atEnd = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 24;
    if (atEnd && !this.following) {
      this.following = true;
      this.unseen = 0;
      this.newButton.hidden = true;
    } else if (!atEnd) {
      this.following = false;
    }
  }

  jumpToEnd() {
    this.following = true;
    this.unseen = 0;
    this.newButton.hidden = true;
    this.list.scrollTop = this.list.scrollHeight;
  }
}
