// Cluster overview: quorum, fencing and the lease at the top, then every node with its comm
// paths, watchdog and maintenance, then the witnesses and the disk voter, or etcd when it is
// the arbiter.

import { api } from "./api.js";
import { chip, h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { act, may } from "./main.js";
import { confirmDialog } from "./dialogs.js";
import { overallState } from "./hierarchies.js";

export function renderOverview(view, store) {
  const status = store.status;
  replace(view,
    h("div", { class: "summary" }, quorumCard(status), fencingCard(status), leaseCard(status),
      hierarchiesCard(status)),
    warnings(status),
    h("h2", {}, t("overview.nodes")),
    h("div", { class: "grid nodes" }, [...status.nodes]
      .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }))
      .map((node) => nodeCard(node, status))),
    voters(status),
    etcdArbiter(status.arbiter));
}

function voterCount(status) {
  const witnesses = status.witnesses || [];
  const all = status.nodes.length + witnesses.length + (status.disk_voter ? 1 : 0);
  const alive = status.nodes.filter((n) => n.state === "ALIVE").length
    + witnesses.filter((w) => w.state === "ALIVE").length
    + (status.disk_voter ? 1 : 0);
  return { all, alive, needed: Math.floor(all / 2) + 1 };
}

function quorumCard(status) {
  const arbiter = status.arbiter || { kind: "majority" };
  if (arbiter.kind === "etcd") return etcdQuorumCard(arbiter);
  const { all, alive, needed } = voterCount(status);
  const held = alive >= needed;
  return h("div", { class: `card stat ${held ? "good" : "bad"}`, id: "quorum" },
    h("div", { class: "stat-label" }, t("overview.quorum")),
    h("div", { class: "stat-value" }, t(held ? "overview.quorum.held" : "overview.quorum.lost")),
    h("div", { class: "muted" }, t("overview.quorum.count", { alive, all, needed,
      mode: status.quorum })));
}

// With etcd as the arbiter the quorum is etcd's, as this node reaches it, not the voters'.
function etcdQuorumCard(arbiter) {
  return h("div", { class: `card stat ${arbiter.quorum ? "good" : "bad"}`, id: "quorum" },
    h("div", { class: "stat-label" }, t("overview.quorum")),
    h("div", { class: "stat-value" },
      t(arbiter.quorum ? "overview.quorum.held" : "overview.quorum.lost")),
    h("div", { class: "muted" }, t("overview.arbiter.etcd", {
      endpoints: arbiter.endpoints.join(", "), ttl: arbiter.ttl })),
    arbiter.quorum ? null : h("div", { class: "problem" }, arbiter.error));
}

function fencingCard(status) {
  const fencing = status.fencing || {};
  const watchdog = fencing.watchdog || {};
  const problem = watchdog.problem || status.nodes.find((n) => n.fencing_problem)?.fencing_problem;
  const state = problem ? "bad" : "good";
  const detail = fencing.mode === "watchdog"
    ? t(watchdog.armed ? "overview.watchdog.armed" : "overview.watchdog.disarmed",
      { timeout: watchdog.timeout ?? "-" })
    : "";
  return h("div", { class: `card stat ${state}`, id: "fencing" },
    h("div", { class: "stat-label" }, t("overview.fencing")),
    h("div", { class: "stat-value" }, fencing.mode || t("none")),
    h("div", { class: "muted" }, detail),
    problem ? h("div", { class: "problem" }, problemText(problem)) : null);
}

function leaseCard(status) {
  const lease = status.lease || {};
  return h("div", { class: "card stat" },
    h("div", { class: "stat-label" }, t("overview.lease")),
    h("div", { class: "stat-value" }, `${lease.duration ?? "-"} s`),
    h("div", { class: "muted" }, lease.why || ""));
}

function hierarchiesCard(status) {
  const counts = {};
  for (const hierarchy of status.hierarchies) {
    const state = overallState(hierarchy, status);
    counts[state] = (counts[state] || 0) + 1;
  }
  return h("div", { class: "card stat" },
    h("div", { class: "stat-label" }, t("overview.hierarchies")),
    h("div", { class: "stat-value" }, String(status.hierarchies.length)),
    h("div", { class: "chips" }, Object.entries(counts).map(([state, n]) =>
      h("span", {}, chip(state), ` ${n}`))));
}

function problemText(problem) {
  return typeof problem === "string" ? problem
    : `${problem.message}${problem.fix ? ` — ${problem.fix}` : ""}`;
}

function warnings(status) {
  const list = status.warnings || [];
  if (!list.length) return null;
  return h("div", { class: "card warnings" },
    list.map((warning) => h("p", {}, "⚠ ", typeof warning === "string" ? warning
      : warning.message || JSON.stringify(warning))));
}

function nodeCard(node, status) {
  const rows = [
    [t("overview.node.heartbeat"), node.local ? t("overview.node.local")
      : node.heartbeat_age == null ? t("overview.node.never") : `${node.heartbeat_age} s`],
    [t("overview.node.generation"), node.generation ?? "-"],
    [t("overview.node.watchdog"), node.watchdog
      ? (node.watchdog.present ? node.watchdog.device : t("overview.node.watchdog.absent"))
      : t("none")],
    [t("overview.node.maintenance"), node.maintenance
      ? t("overview.node.maintenance.since", { since: node.maintenance.since || "" })
      : t("overview.node.maintenance.off")],
  ];
  if (!node.local && node.hears_us === false) rows.push([t("overview.node.hears_us"), t("no")]);
  return h("div", { class: `card node node-${node.state.toLowerCase()}`,
    dataset: { node: node.name, state: node.state } },
  h("div", { class: "card-head" },
    h("h3", {}, node.name), chip(node.state),
    node.local ? h("span", { class: "badge" }, t("overview.node.this")) : null,
    node.maintenance ? h("span", { class: "badge warn" }, t("overview.node.in_maintenance")) : null),
  h("dl", { class: "facts" }, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])),
  node.fencing_problem ? h("p", { class: "problem" }, problemText(node.fencing_problem)) : null,
  node.paths.length ? pathsTable(node.paths) : null,
  node.local && may("maintain") ? maintenanceButton(status) : null);
}

function pathsTable(paths) {
  return h("table", { class: "paths" },
    h("thead", {}, h("tr", {}, [t("path.name"), t("path.priority"), t("path.state"),
      t("path.heard")].map((name) => h("th", {}, name)))),
    h("tbody", {}, paths.map((path) => h("tr", {},
      h("td", { class: "mono" }, path.name), h("td", {}, path.priority), h("td", {}, chip(path.state)),
      h("td", { class: "nowrap" }, path.last_heard_age == null ? "-" : `${path.last_heard_age} s`)))));
}

function maintenanceButton(status) {
  return h("button", { type: "button", class: "warn", id: "maintenance-stop",
    onclick: async () => {
      const sure = await confirmDialog(t("maintenance.title"),
        t("maintenance.confirm", { node: status.node }));
      if (sure) act(t("maintenance.title"), () => api.maintenance());
    } }, t("maintenance.button"));
}

function voters(status) {
  const witnesses = status.witnesses || [];
  if (!witnesses.length && !status.disk_voter) return null;
  return [h("h2", {}, t("overview.witnesses")),
    h("div", { class: "grid nodes" },
      witnesses.map((witness) => h("div", { class: "card node", dataset: { witness: witness.name } },
        h("div", { class: "card-head" }, h("h3", {}, witness.name), chip(witness.state)),
        h("p", { class: "mono muted" }, witness.address),
        witness.paths?.length ? pathsTable(witness.paths) : null)),
      status.disk_voter ? h("div", { class: "card node" },
        h("div", { class: "card-head" }, h("h3", {}, t("overview.disk_voter"))),
        h("dl", { class: "facts" }, Object.entries(status.disk_voter).filter(([, v]) =>
          typeof v !== "object").map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])))
        : null)];
}

// etcd as the arbiter: the leases this node holds there and every owner key etcd has.
function etcdArbiter(arbiter) {
  if (!arbiter || arbiter.kind !== "etcd") return null;
  const held = Object.entries(arbiter.held)
    .map(([name, left]) => t("overview.arbiter.left", { name, left: left.toFixed(1) }));
  const owners = arbiter.owners === null ? null : Object.entries(arbiter.owners).sort()
    .map(([name, node]) => t("overview.arbiter.owner", {
      name, node: node || t("overview.arbiter.not_tutela") }));
  return [h("h2", {}, t("overview.arbiter")),
    h("div", { class: "card node", id: "arbiter" },
      h("dl", { class: "facts" },
        h("dt", {}, t("overview.arbiter.held")), h("dd", {}, held.join(", ") || t("none")),
        owners === null ? null : [h("dt", {}, t("overview.arbiter.owners")),
          h("dd", {}, owners.join(", ") || t("none"))]))];
}
