// The console: signs in as the server's auth mode asks, shows every site at a glance,
// opens one (kept in the URL and across reloads), loads its jobs and messages and
// keeps them live, and never pretends: when the server is away, the data goes stale
// visibly.

import { Api, ApiError, sitePath } from "./api.js";
import { JobsPanel, jobFromApi } from "./jobs.js";
import { MessagesPanel } from "./messages.js";
import { Stream } from "./stream.js";
import { SitePresence, SitesOverview } from "./sites.js";
import { SubmitForm } from "./submit.js";
import { clock, onZoneChange, toggleZone, zoneName } from "./time.js";
import { finishOidcLogin, startOidcLogin } from "./oidc.js";

const SITE_KEY = "obsrelay.site";
// Not live for this long: the data is stale; for the longer one, the server is offline.
const STALE_AFTER_MS = 3000;
const OFFLINE_AFTER_MS = 30000;
const api = new Api();

function toast(text, kind = "") {
  const note = Object.assign(document.createElement("div"), { className: `toast ${kind}`, textContent: text });
  document.getElementById("toasts").append(note);
  setTimeout(() => note.remove(), kind === "bad" ? 8000 : 4000);
}

const jobs = new JobsPanel(api, toast);
const messages = new MessagesPanel(api, toast);
const presence = new SitePresence(api, (view) => jobs.flag(view.jobs.overdue, view.jobs.abandoned));
const submit = new SubmitForm(
  api,
  toast,
  (created) => jobs.upsert(jobFromApi(created)),
  () => presence.offline
    ? `${site} is offline: its software has not called since ${presence.view.last_seen_ms ? clock(presence.view.last_seen_ms) + " " + zoneName() : "it was added"}. ` +
      "The job will wait until the site is back, and may run then. Submit it anyway?"
    : null,
);
const overview = new SitesOverview(api, toast, (name) => openSite(name));
const connection = document.getElementById("connection");
const staleBanner = document.getElementById("stale");
let stream = null;
let config = null;
let site = null;
let lostAt = null;
let staleTimer = null;

function showState(state) {
  connection.dataset.state = state;
  connection.textContent = state === "reconnecting" ? "reconnecting…" : state;
  if (state === "live") {
    lostAt = null;
    clearTimeout(staleTimer);
    setStale(false);
    return;
  }
  if (lostAt === null && state !== "connecting") {
    lostAt = Date.now();
    clearTimeout(staleTimer);
    staleTimer = setTimeout(() => setStale(true), STALE_AFTER_MS);
  }
}

// The data shown is what the server said last: dimmed, countdowns stopped, and a
// banner that says since when; "offline" once the server has been away a while.
function setStale(stale) {
  const workspace = document.getElementById("workspace");
  workspace.classList.toggle("stale", stale && site !== null);
  document.getElementById("presence").classList.toggle("stale", stale);
  jobs.frozen = stale;
  staleBanner.hidden = !stale || site === null;
  clearInterval(setStale.updater);
  if (!stale) return;
  const write = () => {
    const away = Date.now() - lostAt;
    const what = away >= OFFLINE_AFTER_MS ? "The server is offline" : "The connection to the server is lost";
    staleBanner.textContent = `${what} since ${clock(lostAt)} ${zoneName()}: what is shown is as it was then, ` +
      "and may be out of date. Reconnecting…";
    staleBanner.dataset.state = away >= OFFLINE_AFTER_MS ? "offline" : "lost";
  };
  write();
  setStale.updater = setInterval(write, 1000);
}

// A frame of the native stream: the job as it is now, or the message with its id.
function onFrame(frame) {
  if (frame.site !== site) return;
  if (frame.topic === "job") jobs.upsert(jobFromApi(frame.data));
  else if (frame.topic === "message") messages.add(frame.data);
  else if (frame.topic === "presence") presence.refresh();
}

// Every site at a glance: what the console shows without a site.
function showOverview() {
  site = null;
  stream.close();
  presence.stop();
  const url = new URL(location.href);
  url.searchParams.delete("site");
  history.replaceState(null, "", url);
  document.title = "obsrelay";
  document.getElementById("workspace").hidden = true;
  document.getElementById("no-site").hidden = true;
  staleBanner.hidden = true;
  connection.hidden = true; // no site, no stream to show the state of
  overview.show();
}

async function openSite(name) {
  site = name;
  localStorage.setItem(SITE_KEY, name);
  const url = new URL(location.href);
  url.searchParams.set("site", name);
  history.replaceState(null, "", url);
  document.title = `${name} · obsrelay`;
  document.getElementById("site-input").value = name;
  document.getElementById("no-site").hidden = true;
  overview.hide();
  connection.hidden = false;
  document.getElementById("workspace").hidden = false;
  submit.site = name;
  stream.close();
  showState("connecting");
  try {
    // The stream's position first: what happens after it is replayed, nothing falls between.
    const { head } = await api.get(sitePath(name, "/stream"));
    await Promise.all([jobs.load(name), messages.load(name), presence.follow(name)]);
    if (site === name) stream.open(name, head, api.token);
  } catch (error) {
    showState("offline");
    toast(error.message, "bad");
    if (error instanceof ApiError && error.status === 401) showSignedOut();
  }
}

// Whether reading needs a token that this tab does not have (then nothing is asked).
function mustSignInFirst() {
  return !config.public_read && !api.token;
}

async function loadSites() {
  if (mustSignInFirst()) return [];
  try {
    const { sites } = await api.get("/api/v1/sites");
    document.getElementById("site-list").replaceChildren(
      ...sites.map(({ site: name }) => Object.assign(document.createElement("option"), { value: name })),
    );
    return sites.map(({ site: name }) => name);
  } catch {
    return [];
  }
}

// Reading needs a token: nothing of the site is shown, or followed, until sign-in.
function lockSite() {
  stream.close();
  presence.stop();
  overview.hide();
  document.getElementById("workspace").hidden = true;
  const hint = document.getElementById("no-site");
  hint.textContent = "Sign in to see the sites.";
  hint.hidden = false;
  showState("offline");
}

function showSignedIn(user) {
  document.getElementById("who").textContent = user ? `${user.name}${user.roles.includes("admin") ? " (admin)" : ""}` : "";
  document.getElementById("sign-in").hidden = true;
  document.getElementById("sign-out").hidden = config.auth_mode === "none";
  document.getElementById("cancel-all").hidden = false;
}

// Who is not signed in cannot command: the commands are not offered.
function showSignedOut() {
  api.token = null;
  document.getElementById("who").textContent = "not signed in";
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("cancel-all").hidden = true;
}

async function signInWithToken(token) {
  api.token = token;
  try {
    showSignedIn(await api.get("/api/v1/me"));
    return null;
  } catch (error) {
    api.token = null;
    return error.message;
  }
}

function setUpSignIn() {
  const dialog = document.getElementById("sign-in-dialog");
  const form = document.getElementById("sign-in-form");
  const problem = document.getElementById("sign-in-error");
  document.getElementById("sign-in").addEventListener("click", () => {
    if (config.oidc) {
      startOidcLogin(config.oidc);
      return;
    }
    problem.hidden = true;
    dialog.showModal();
  });
  document.getElementById("sign-in-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const failed = await signInWithToken(document.getElementById("token-input").value.trim());
    if (failed) {
      problem.textContent = failed;
      problem.hidden = false;
      return;
    }
    dialog.close();
    document.getElementById("token-input").value = "";
    loadSites();
    if (site) openSite(site);
  });
  document.getElementById("sign-out").addEventListener("click", () => {
    showSignedOut();
    if (mustSignInFirst()) lockSite();
    else if (site) openSite(site);
  });
}

async function start() {
  config = await api.get("/api/v1/console");
  stream = new Stream(onFrame, showState);
  setUpSignIn();
  if (config.auth_mode === "none") {
    showSignedIn(null);
    document.getElementById("who").textContent = "sign-in is off on this server";
  } else {
    const fromLogin = config.oidc ? await finishOidcLogin(config.oidc).catch((error) => {
      toast(error.message, "bad");
      return null;
    }) : null;
    const token = fromLogin || api.token;
    if (!token || (await signInWithToken(token))) showSignedOut();
  }
  document.getElementById("site-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = document.getElementById("site-input").value.trim();
    if (name && mustSignInFirst()) toast("Sign in first.", "bad");
    else if (name) openSite(name);
  });
  document.getElementById("site-input").addEventListener("focus", loadSites);
  document.getElementById("home").addEventListener("click", (event) => {
    event.preventDefault();
    if (mustSignInFirst()) toast("Sign in first.", "bad");
    else showOverview();
  });
  const zone = document.getElementById("zone");
  zone.textContent = zoneName();
  zone.addEventListener("click", () => toggleZone());
  onZoneChange(() => {
    zone.textContent = zoneName();
    if (site) presence.render();
    else overview.render();
  });
  const known = await loadSites();
  const wanted = new URL(location.href).searchParams.get("site") || localStorage.getItem(SITE_KEY) ||
    (known.length === 1 ? known[0] : null);
  if (wanted && mustSignInFirst()) {
    site = wanted;
    document.getElementById("site-input").value = wanted;
    lockSite();
  } else if (wanted) openSite(wanted);
  else if (mustSignInFirst()) lockSite();
  else showOverview();
}

start().catch((error) => toast(`The console could not start: ${error.message}`, "bad"));
