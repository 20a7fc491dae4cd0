// The console: signs in as the server's auth mode asks, picks a site (kept in the URL
// and across reloads), loads its jobs and messages and keeps them live.

import { Api, ApiError, sitePath } from "./api.js";
import { JobsPanel, jobFromApi } from "./jobs.js";
import { MessagesPanel } from "./messages.js";
import { Stream } from "./stream.js";
import { SubmitForm } from "./submit.js";
import { finishOidcLogin, startOidcLogin } from "./oidc.js";

const SITE_KEY = "obsrelay.site";
const api = new Api();

function toast(text, kind = "") {
  const note = Object.assign(document.createElement("div"), { className: `toast ${kind}`, textContent: text });
  document.getElementById("toasts").append(note);
  setTimeout(() => note.remove(), kind === "bad" ? 8000 : 4000);
}

const jobs = new JobsPanel(api, toast);
const messages = new MessagesPanel(api, toast);
const submit = new SubmitForm(api, toast, (created) => jobs.upsert(jobFromApi(created)));
const connection = document.getElementById("connection");
let stream = null;
let config = null;
let site = null;

function showState(state) {
  connection.dataset.state = state;
  connection.textContent = state === "reconnecting" ? "reconnecting…" : state;
}

// A frame of the native stream: the job as it is now, or the message with its id.
function onFrame(frame) {
  if (frame.site !== site) return;
  if (frame.topic === "job") jobs.upsert(jobFromApi(frame.data));
  else if (frame.topic === "message") messages.add(frame.data);
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
  document.getElementById("workspace").hidden = false;
  submit.site = name;
  stream.close();
  showState("connecting");
  try {
    // The stream's position first: what happens after it is replayed, nothing falls between.
    const { head } = await api.get(sitePath(name, "/stream"));
    await Promise.all([jobs.load(name), messages.load(name)]);
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
}

function showSignedOut() {
  api.token = null;
  document.getElementById("who").textContent = "not signed in";
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-out").hidden = true;
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
  const known = await loadSites();
  const wanted = new URL(location.href).searchParams.get("site") || localStorage.getItem(SITE_KEY) ||
    (known.length === 1 ? known[0] : null);
  if (wanted && mustSignInFirst()) {
    site = wanted;
    document.getElementById("site-input").value = wanted;
    lockSite();
  } else if (wanted) openSite(wanted);
  else showState("offline");
}

start().catch((error) => toast(`The console could not start: ${error.message}`, "bad"));
