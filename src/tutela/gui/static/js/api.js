// The HTTPS API (docs/api.md) as the page uses it: every route in one place. A login gives
// a session cookie and a CSRF token for state-changing requests; an API token goes as a
// bearer token instead and is kept for this tab only.

const BASE = "api/v1";
const TOKEN_KEY = "tutela.token";
let csrf = sessionStorage.getItem("tutela.csrf") || "";

export class ApiError extends Error {
  // status: the HTTP status; problems: [{field, message, fix}] of a refused request.
  constructor(status, message, problems = [], fix = "") {
    super(message);
    this.status = status;
    this.problems = problems;
    this.fix = fix;
  }
}

function headers(extra = {}) {
  const all = { Accept: "application/json", ...extra };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) all.Authorization = `Bearer ${token}`;
  if (csrf) all["X-CSRF-Token"] = csrf;
  return all;
}

async function request(method, path, body, accept = "application/json") {
  const init = { method, headers: headers({ Accept: accept }), credentials: "same-origin" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(`${BASE}/${path}`, init);
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw errorOf(response.status, data);
  return data;
}

// The API's refusal: {"error": {kind, message, problems: [{field, message, fix}], fix}}.
function errorOf(status, data) {
  const error = typeof data === "object" && data !== null ? data.error : null;
  if (!error) return new ApiError(status, `HTTP ${status}: ${String(data).slice(0, 200)}`);
  return new ApiError(status, error.message, error.problems || [], error.fix || "");
}

function keepCsrf(me) {
  csrf = me.csrf_token || "";
  sessionStorage.setItem("tutela.csrf", csrf);
  return me;
}

const get = (path) => request("GET", path);
const post = (path, body = {}) => request("POST", path, body);
const enc = encodeURIComponent;

export const api = {
  login: async (user, password) => {
    sessionStorage.removeItem(TOKEN_KEY);
    return keepCsrf(await post("login", { user, password }));
  },
  useToken: (token) => {
    sessionStorage.setItem(TOKEN_KEY, token);
    csrf = "";
    sessionStorage.removeItem("tutela.csrf");
  },
  logout: async () => {
    const hadSession = !sessionStorage.getItem(TOKEN_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
    if (hadSession) await post("logout").catch(() => undefined);
    csrf = "";
    sessionStorage.removeItem("tutela.csrf");
  },
  me: async () => keepCsrf(await get("me")),
  status: () => get("status"),
  events: (limit = 300) => get(`events?limit=${limit}`),
  why: (tag) => get(`why?tag=${enc(tag)}`),
  kits: () => get("kits"),
  kit: (name) => get(`kits/${enc(name)}`),
  restore: (tag, node) => post(`hierarchies/${enc(tag)}/restore`, node ? { on: node } : {}),
  remove: (tag, node) => post(`hierarchies/${enc(tag)}/remove`, node ? { on: node } : {}),
  switchover: (tag, node) => post(`hierarchies/${enc(tag)}/switchover`, { to: node }),
  extend: (tag, node, priority) =>
    post(`hierarchies/${enc(tag)}/extend`, { to: node, priority }),
  maintenance: () => post("maintenance", {}),
  createResource: (resource) => post("resources", resource),
  addDependency: (parent, child) => post("dependencies", { parent, child }),
  exportYaml: () => get("export"),
  apply: (yaml, dryRun) => post("apply", { yaml, dry_run: dryRun }),
};

// The live event stream (Server-Sent Events) read with fetch, so that a bearer token goes
// along as well as the session cookie. Calls onEvent(record) for each journal record and
// onState(true/false) as the stream opens and drops; reconnects until stopped.
export function follow(onEvent, onState) {
  let stopped = false;
  let controller = null;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const response = await fetch(`${BASE}/events/stream`, {
          headers: headers({ Accept: "text/event-stream" }),
          credentials: "same-origin", signal: controller.signal });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        onState(true);
        await readEvents(response.body, onEvent);
      } catch (error) {
        if (stopped) return;
      }
      onState(false);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  run();
  return () => { stopped = true; if (controller) controller.abort(); };
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart()).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}
