// The page: login, the tabs, and the live state every view draws from. Status is read
// again at once when the event stream brings a record, and every POLL_MS besides (a node's
// heartbeat age or a path state changes without a journal record); every FAST_POLL_MS
// while a failover is under way, so that the new owner shows as soon as it is there.

import { api, follow } from "./api.js";
import { h, replace } from "./dom.js";
import { preferredLanguage, setLanguage, t, language } from "./i18n.js";
import { renderOverview } from "./overview.js";
import { renderHierarchies } from "./hierarchies.js";
import { renderTimeline } from "./timeline.js";
import { renderConfiguration } from "./configuration.js";

const POLL_MS = 2000;
const FAST_POLL_MS = 250;
const SETTLED_STATES = new Set(["ISP", "ISU", "OSU", "OSF"]);
const EVENT_REFRESH_MS = 100;
const EVENTS_KEPT = 500;
const VIEWS = {
  overview: renderOverview,
  hierarchies: renderHierarchies,
  timeline: renderTimeline,
  configuration: renderConfiguration,
};
const LIVE_VIEWS = new Set(["overview", "hierarchies", "timeline"]);

export const store = {
  me: null, status: null, statusError: null, events: [], selected: null, view: "overview",
};

let stopFollowing = null;
let pollTimer = null;
let refreshTimer = null;

// --- permissions: what GET /me says the role may do (the API decides, in one place); a
// role limited to some hierarchies acts only on those. Used only to hide buttons: the
// API refuses the request anyway.
const ACTIONS = { operate: "operate", maintain: "maintain", configure: "configure",
  configureCluster: "configure-cluster" };

export function may(action, hierarchy = null) {
  const me = store.me;
  if (!me || !me.may[ACTIONS[action]]) return false;
  const limit = me.hierarchies || [];
  return !limit.length || hierarchy === null || limit.includes(hierarchy);
}

// --- messages to the user --------------------------------------------------------------
// A note at the bottom right; `replacing` a note still shown (an action's "started")
// puts this one in its place.
export function toast(text, kind = "info", replacing = null) {
  const item = h("div", { class: `toast toast-${kind}`, role: "status" }, text);
  if (replacing?.isConnected) replacing.replaceWith(item);
  else document.getElementById("toasts").append(item);
  setTimeout(() => item.remove(), kind === "error" ? 9000 : 4000);
  return item;
}

export function errorText(error) {
  const fix = error.fix ? ` — ${error.fix}` : "";
  return `${error.message}${fix}`;
}

// Runs an action, says it started, then how it ended; the status follows by itself.
export async function act(label, action) {
  const started = toast(t("toast.started", { action: label }));
  try {
    await action();
    toast(t("toast.done", { action: label }), "ok", started);
  } catch (error) {
    toast(t("toast.failed", { action: label, error: errorText(error) }), "error", started);
  }
  refreshSoon();
}

// --- data ------------------------------------------------------------------------------
// A failover is under way: a node is not ALIVE and a hierarchy runs nowhere, or a
// resource is in no settled state on this node.
function unsettled(status) {
  if (!status) return false;
  const resources = status.hierarchies.flatMap((x) => x.resources);
  if (resources.some((r) => !SETTLED_STATES.has(r.state))) return true;
  const down = status.nodes.filter((n) => n.state !== "ALIVE").map((n) => n.name);
  const runsOn = (r, node) => ["ISP", "ISU"].includes(
    node === status.node ? r.state : r.elsewhere?.[node]?.state);
  const running = (x) => status.nodes.some((n) => !down.includes(n.name) && runsOn(
    x.resources.find((r) => r.tag === x.root), n.name));
  return down.length > 0 && status.hierarchies.some((x) => !running(x));
}

async function refreshStatus() {
  clearTimeout(pollTimer);
  try {
    store.status = await api.status();
    store.statusError = null;
  } catch (error) {
    if (error.status === 401) return signedOut();
    store.statusError = errorText(error);
  }
  drawHeader();
  redraw();
  clearTimeout(pollTimer);
  const next = unsettled(store.status) ? FAST_POLL_MS : POLL_MS;
  if (store.me) pollTimer = setTimeout(refreshStatus, next);
}

export function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshStatus, EVENT_REFRESH_MS);
}

function received(record) {
  store.events.push(record);
  if (store.events.length > EVENTS_KEPT) store.events.splice(0, store.events.length - EVENTS_KEPT);
  refreshSoon();
}

function setLive(on) {
  const live = document.getElementById("live");
  live.dataset.live = on ? "on" : "off";
  document.getElementById("live-text").textContent = t(on ? "live.on" : "live.off");
}

async function start() {
  document.getElementById("login").hidden = true;
  document.getElementById("tabs").hidden = false;
  drawUser();
  try {
    store.events = (await api.events()).events || [];
  } catch (error) {
    toast(errorText(error), "error");
  }
  await refreshStatus();
  stopFollowing = follow(received, setLive);
  route();
}

function signedOut() {
  if (stopFollowing) stopFollowing();
  clearTimeout(pollTimer);
  stopFollowing = null;
  store.me = null;
  store.status = null;
  document.getElementById("tabs").hidden = true;
  document.getElementById("user-line").hidden = true;
  replace(document.getElementById("view"));
  document.getElementById("login").hidden = false;
  setLive(false);
}

// --- drawing ---------------------------------------------------------------------------
function drawHeader() {
  const status = store.status;
  const line = document.getElementById("cluster-line");
  if (!status) return replace(line, store.statusError || "");
  replace(line,
    h("span", { class: "cluster-name" }, status.cluster),
    h("span", { class: "muted" }, t("header.answering", { node: status.node })),
    h("span", { class: "muted" }, t("header.generation", { generation: status.generation })));
}

function drawUser() {
  const me = store.me;
  document.getElementById("user-line").hidden = false;
  document.getElementById("user-name").textContent = me.user;
  const role = document.getElementById("user-role");
  role.textContent = t(`role.${me.role}`);
  role.dataset.role = me.role;
  for (const tab of document.querySelectorAll("#tabs [data-needs]")) {
    tab.hidden = !may("configureCluster");
  }
}

// What a view draws from, less what changes on every poll (heartbeat ages, counters):
// a view is drawn again only when this changes, so a choice the user is making in it (a
// switchover target) is not reset under the mouse. The overview shows the ages: all of it.
const VOLATILE = new Set(["heartbeat_age", "last_heard_age", "age", "sent", "received",
  "max_heartbeat_lateness", "max_heartbeat_gap", "dropped_frames", "events", "daemon_pid"]);
let drawn = "";

function signature() {
  const skip = store.view === "overview" ? new Set() : VOLATILE;
  return JSON.stringify([store.view, store.selected, store.events.length, language(),
    store.statusError, store.status], (key, value) => (skip.has(key) ? undefined : value));
}

export function redraw(force = false) {
  if (!store.me) return;
  if (!force && !LIVE_VIEWS.has(store.view)) return;
  const now = signature();
  if (!force && now === drawn) return;
  drawn = now;
  const view = document.getElementById("view");
  const draw = VIEWS[store.view];
  if (store.view !== "configuration" && !store.status) {
    return replace(view, h("p", { class: "muted" }, store.statusError || t("loading")));
  }
  draw(view, store);
}

function route() {
  const name = location.hash.slice(1) || "overview";
  store.view = name in VIEWS && (name !== "configuration" || may("configureCluster"))
    ? name : "overview";
  for (const tab of document.querySelectorAll("#tabs a")) {
    tab.classList.toggle("active", tab.dataset.view === store.view);
  }
  redraw(true);
}

// --- boot ------------------------------------------------------------------------------
async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    store.me = await api.login(form.username.value, form.password.value);
    form.password.value = "";
    await start();
  } catch (failure) {
    error.textContent = errorText(failure);
  }
}

async function signInWithToken() {
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  error.textContent = "";
  api.useToken(form.token.value.trim());
  try {
    store.me = await api.me();
    form.token.value = "";
    await start();
  } catch (failure) {
    await api.logout();
    error.textContent = errorText(failure);
  }
}

async function boot() {
  const select = document.getElementById("language");
  await setLanguage(preferredLanguage());
  select.value = language();
  select.addEventListener("change", async () => {
    await setLanguage(select.value);
    if (store.me) drawUser();
    drawHeader();
    setLive(document.getElementById("live").dataset.live === "on");
    redraw(true);
  });
  document.getElementById("login-form").addEventListener("submit", signIn);
  document.getElementById("token-submit").addEventListener("click", signInWithToken);
  document.getElementById("logout").addEventListener("click", async () => {
    await api.logout();
    signedOut();
  });
  window.addEventListener("hashchange", route);
  // #token=... signs in with an API token (kept for this tab only, dropped from the URL).
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) {
    api.useToken(token);
    history.replaceState(null, "", location.pathname);
  }
  setLive(false);
  try {
    store.me = await api.me();
  } catch {
    return signedOut();
  }
  await start();
}

boot();
