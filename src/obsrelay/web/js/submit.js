// The submit form: device, instance, action and params as key/value rows; the last
// few submissions are offered again.

import { sitePath } from "./api.js";

const RECENT_KEY = "obsrelay.recentSubmissions";
const RECENT_COUNT = 8;

// A value typed in a param row: JSON when it is JSON (30, true, [1,2]), else the text.
export function parseValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class SubmitForm {
  // warning() says why a submission needs a confirmation first (the site is offline),
  // or null.
  constructor(api, toast, onSubmitted, warning = () => null) {
    this.api = api;
    this.toast = toast;
    this.onSubmitted = onSubmitted;
    this.warning = warning;
    this.site = null;
    this.form = document.getElementById("submit-form");
    this.recent = document.getElementById("recent-submissions");
    for (const fieldset of this.form.querySelectorAll("fieldset")) {
      fieldset.querySelector(".add-row").addEventListener("click", () => this.addRow(fieldset));
    }
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.recent.addEventListener("change", () => this.fillFromRecent());
    this.showRecent();
  }

  addRow(fieldset, key = "", value = "") {
    const row = document.createElement("div");
    row.className = "param-row";
    const name = Object.assign(document.createElement("input"), { placeholder: "name", value: key, className: "param-key" });
    const input = Object.assign(document.createElement("input"), { placeholder: "value", value, className: "param-value" });
    name.setAttribute("aria-label", `${fieldset.dataset.params} param name`);
    input.setAttribute("aria-label", `${fieldset.dataset.params} param value`);
    const remove = Object.assign(document.createElement("button"), { type: "button", className: "quiet", textContent: "✕" });
    remove.setAttribute("aria-label", "Remove param");
    remove.addEventListener("click", () => row.remove());
    row.append(name, input, remove);
    fieldset.querySelector(".rows").append(row);
    return row;
  }

  params(kind) {
    const params = {};
    for (const row of this.form.querySelectorAll(`fieldset[data-params="${kind}"] .param-row`)) {
      const key = row.querySelector(".param-key").value.trim();
      if (key) params[key] = parseValue(row.querySelector(".param-value").value);
    }
    return params;
  }

  async submit() {
    if (!this.site) return;
    const warning = this.warning();
    if (warning && !window.confirm(warning)) return;
    const job = {
      device: this.form.elements.device.value.trim(),
      instance: this.form.elements.instance.value.trim(),
      action: this.form.elements.action.value.trim(),
      required_params: this.params("required"),
      optional_params: this.params("optional"),
    };
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const created = await this.api.post(sitePath(this.site, "/jobs"), job);
      this.remember(job);
      this.toast(`Submitted ${job.device}/${job.instance} ${job.action}.`, "ok");
      this.onSubmitted(created);
    } catch (error) {
      this.toast(error.message, "bad");
    } finally {
      button.disabled = false;
    }
  }

  loadRecent() {
    try {
      const stored = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
      return Array.isArray(stored) ? stored : [];
    } catch {
      return [];
    }
  }

  remember(job) {
    const same = JSON.stringify(job);
    const recent = [job, ...this.loadRecent().filter((old) => JSON.stringify(old) !== same)];
    localStorage.setItem(RECENT_KEY, JSON.stringify(recent.slice(0, RECENT_COUNT)));
    this.showRecent();
  }

  showRecent() {
    const options = this.loadRecent().map((job, index) => {
      const params = Object.entries(job.required_params).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
      return Object.assign(document.createElement("option"), {
        value: String(index),
        textContent: `${job.device}/${job.instance} ${job.action} ${params}`.trim(),
      });
    });
    this.recent.replaceChildren(Object.assign(document.createElement("option"), { value: "", textContent: "recent…" }), ...options);
    this.recent.disabled = options.length === 0;
  }

  fillFromRecent() {
    const job = this.loadRecent()[Number(this.recent.value)];
    this.recent.value = "";
    if (!job) return;
    for (const name of ["device", "instance", "action"]) this.form.elements[name].value = job[name];
    for (const kind of ["required", "optional"]) {
      const fieldset = this.form.querySelector(`fieldset[data-params="${kind}"]`);
      fieldset.querySelector(".rows").replaceChildren();
      for (const [key, value] of Object.entries(job[`${kind}_params`])) {
        this.addRow(fieldset, key, typeof value === "string" ? value : JSON.stringify(value));
      }
    }
  }
}
