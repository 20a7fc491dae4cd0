// How the console writes times: UTC by default (astronomers work in UTC), or the
// browser's local time when the operator switches; dates in ISO order. The choice is
// kept across reloads; every time shown goes through here.

const ZONE_KEY = "obsrelay.zone";
const listeners = new Set();
let utc = localStorage.getItem(ZONE_KEY) !== "local";

function pad(number) {
  return String(number).padStart(2, "0");
}

function parts(ms) {
  const at = new Date(ms);
  return utc
    ? [at.getUTCFullYear(), at.getUTCMonth() + 1, at.getUTCDate(), at.getUTCHours(), at.getUTCMinutes(), at.getUTCSeconds()]
    : [at.getFullYear(), at.getMonth() + 1, at.getDate(), at.getHours(), at.getMinutes(), at.getSeconds()];
}

export function zoneName() {
  return utc ? "UTC" : "local";
}

// "21:04:05"
export function clock(ms) {
  const [, , , hours, minutes, seconds] = parts(ms);
  return `${pad(hours)}:${pad(minutes)}:${pad(seconds)}`;
}

// "2026-11-22 21:04:05"
export function dateTime(ms) {
  const [year, month, day] = parts(ms);
  return `${year}-${pad(month)}-${pad(day)} ${clock(ms)}`;
}

// The clock today, the date and time otherwise; with the zone: "02:13 UTC".
export function since(ms) {
  const today = parts(Date.now()).slice(0, 3).join("-") === parts(ms).slice(0, 3).join("-");
  const [year, month, day, hours, minutes] = parts(ms);
  const time = `${pad(hours)}:${pad(minutes)}`;
  return `${today ? time : `${year}-${pad(month)}-${pad(day)} ${time}`} ${zoneName()}`;
}

// "12 s ago", "5 min ago", "3 h ago", "2 d ago"; "never" for null.
export function ago(ms) {
  if (ms === null || ms === undefined) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function toggleZone() {
  utc = !utc;
  localStorage.setItem(ZONE_KEY, utc ? "utc" : "local");
  for (const listener of listeners) listener();
}

// `listener()` runs after every switch, to redraw the times shown.
export function onZoneChange(listener) {
  listeners.add(listener);
}
