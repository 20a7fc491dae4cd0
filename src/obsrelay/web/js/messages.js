// The messages panel: the site's user status stream, live, with a level filter, a
// search, and auto-scroll that pauses while the operator reads further up.

import { sitePath } from "./api.js";
import { clock, dateTime, onZoneChange } from "./time.js";

const LEVELS = ["debug", "info", "warning", "error", "critical"];
const MAX_LINES = 2000;
const LOOK_BACK_SECONDS = 24 * 3600;
const MAX_PAGES = 5;
const OLDER_PAGE = 200;
// A longer message shows its first lines and a "more" button.
const LONG_CHARACTERS = 400;
const LONG_LINES = 4;

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
    this.loadingOlder = false;
    this.noOlder = false;
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
    this.noOlder = false;
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
  add(message) {
    if (this.seen.has(message.ulid)) return;
    this.seen.add(message.ulid);
    const line = this.line(message);
    this.list.append(line);
    while (this.list.children.length > MAX_LINES) this.list.firstElementChild.remove();
    this.noOlder = this.noOlder && this.list.children.length < MAX_LINES;
    if (this.following) {
      this.list.scrollTop = this.list.scrollHeight;
    } else if (!line.hidden) {
      this.unseen += 1;
      this.newButton.textContent = `${this.unseen} new message${this.unseen === 1 ? "" : "s"} ↓`;
      this.newButton.hidden = false;
    }
  }

  // Scrolled to the top: the page of messages before the oldest one shown, kept in view.
  async loadOlder() {
    const first = this.list.firstElementChild;
    if (this.loadingOlder || this.noOlder || !first || !this.site) return;
    this.loadingOlder = true;
    const site = this.site;
    try {
      const query = new URLSearchParams({ before: first.dataset.ulid, limit: String(OLDER_PAGE) });
      const found = await this.api.get(`${sitePath(site, "/messages")}?${query}`);
      if (site !== this.site) return;
      if (found.messages.length < OLDER_PAGE) this.noOlder = true;
      const height = this.list.scrollHeight;
      const older = found.messages.filter((message) => !this.seen.has(message.ulid));
      for (const message of older) this.seen.add(message.ulid);
      first.before(...older.map((message) => this.line(message)));
      this.list.scrollTop += this.list.scrollHeight - height;
    } catch (error) {
      this.toast(error.message, "bad");
    } finally {
      this.loadingOlder = false;
    }
  }

  line({ ulid, message: text, level, timestamp }) {
    const line = document.createElement("li");
    line.dataset.ulid = ulid;
    line.className = `lv-${LEVELS.includes(level) ? level : "info"}`;
    line.dataset.level = level;
    const time = Object.assign(document.createElement("span"), { className: "m-time" });
    time.dataset.ms = String(timestamp * 1000);
    this.writeTime(time);
    const badge = Object.assign(document.createElement("span"), { className: "m-level", textContent: level });
    const body = Object.assign(document.createElement("span"), { className: "m-text", textContent: text });
    line.append(time, badge, body);
    if (text.length > LONG_CHARACTERS || text.split("\n").length > LONG_LINES) {
      body.classList.add("collapsed");
      const more = Object.assign(document.createElement("button"), {
        type: "button", className: "quiet more", textContent: `more (${text.length} characters)`,
      });
      more.addEventListener("click", () => {
        const collapsed = body.classList.toggle("collapsed");
        more.textContent = collapsed ? `more (${text.length} characters)` : "less";
      });
      line.append(more);
    }
    line.hidden = !this.matches(line);
    return line;
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
    if (this.list.scrollTop < 40) this.loadOlder();
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
