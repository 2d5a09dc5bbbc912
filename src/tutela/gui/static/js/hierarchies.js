// Every hierarchy as a tree (root first, each resource under the one that needs it), one
// column per node of its equivalencies with the resource's state there; the actions the
// user's role allows; a resource's details when it is picked.

import { api } from "./api.js";
import { chip, clock, h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { act, may, redraw } from "./main.js";
import { openDialog, closeDialog } from "./dialogs.js";
import { createResourceWizard, extendWizard, dependencyWizard } from "./wizards.js";

const RUNNING = new Set(["ISP", "ISU"]);

export function renderHierarchies(view, store) {
  const status = store.status;
  const toolbar = h("div", { class: "toolbar" },
    h("h2", {}, t("nav.hierarchies")),
    h("div", { class: "spacer" }),
    may("configure") ? h("button", { type: "button", class: "primary", id: "new-resource",
      onclick: () => createResourceWizard(status) }, t("wizard.create.button")) : null,
    may("configure") && status.hierarchies.length ? h("button", { type: "button",
      id: "add-dependency", onclick: () => dependencyWizard(status) },
    t("wizard.dependency.button")) : null);
  const cards = status.hierarchies.map((hierarchy) => hierarchyCard(hierarchy, status, store));
  replace(view, toolbar,
    cards.length ? cards : h("p", { class: "card muted" }, t("hierarchy.none")));
}

// The nodes to draw a column for: this node and every node the status reports a state
// from (its equivalencies and any node where it is not OSU), in the cluster's node order.
function columns(hierarchy, status) {
  const names = new Set([status.node]);
  for (const resource of hierarchy.resources) {
    for (const node of Object.keys(resource.elsewhere || {})) names.add(node);
  }
  return status.nodes.map((n) => n.name).filter((name) => names.has(name))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

// A resource's state on `node` and whether that is current (a dead node's is not).
export function stateOn(resource, node, status) {
  const peer = status.nodes.find((n) => n.name === node);
  if (node === status.node) return { state: resource.state, stale: false };
  const there = (resource.elsewhere || {})[node];
  if (!there) return { state: "UNKNOWN", stale: true };
  return { state: there.state, stale: Boolean(there.stale) || (peer && peer.state !== "ALIVE") };
}

function alive(node, status) {
  return status.nodes.some((n) => n.name === node && n.state === "ALIVE");
}

export function owners(hierarchy, status) {
  const root = hierarchy.resources.find((r) => r.tag === hierarchy.root);
  return columns(hierarchy, status).filter((node) => {
    const { state, stale } = stateOn(root, node, status);
    return RUNNING.has(state) && !stale;
  });
}

// The hierarchy's state as a whole: its root's state where it runs; where it runs
// nowhere, OSF if it failed on any node, else its state here.
export function overallState(hierarchy, status) {
  const root = hierarchy.resources.find((r) => r.tag === hierarchy.root);
  const running = owners(hierarchy, status);
  if (running.length) return stateOn(root, running[0], status).state;
  const states = columns(hierarchy, status).map((node) => stateOn(root, node, status));
  return states.some((s) => s.state === "OSF" && !s.stale) ? "OSF" : hierarchy.state;
}

function depths(hierarchy) {
  const byTag = Object.fromEntries(hierarchy.resources.map((r) => [r.tag, r]));
  const depth = {};
  const walk = (tag, level) => {
    if (tag in depth && depth[tag] >= level) return;
    depth[tag] = level;
    for (const child of byTag[tag]?.depends_on || []) walk(child, level + 1);
  };
  walk(hierarchy.root, 0);
  return depth;
}

function hierarchyCard(hierarchy, status, store) {
  const nodes = columns(hierarchy, status);
  const running = owners(hierarchy, status);
  const depth = depths(hierarchy);
  const head = h("div", { class: "card-head" },
    h("h3", {}, hierarchy.root), chip(overallState(hierarchy, status)),
    h("span", { class: "owner", dataset: { owner: running.join(" ") } },
      running.length ? t("hierarchy.running_on", { nodes: running.join(", ") })
        : t("hierarchy.running_nowhere")),
    h("div", { class: "spacer" }), actions(hierarchy, status, nodes, running));
  const table = h("table", { class: "tree" },
    h("thead", {}, h("tr", {}, h("th", {}, t("hierarchy.resource")),
      nodes.map((node) => h("th", { class: "node-col" }, node,
        node === status.node ? h("span", { class: "muted" }, ` (${t("overview.node.this")})`) : null)))),
    h("tbody", {}, hierarchy.resources.map((resource) =>
      resourceRow(resource, depth[resource.tag] || 0, nodes, status, store))));
  const selected = hierarchy.resources.find((r) => r.tag === store.selected);
  return h("section", { class: "card hierarchy", dataset: { hierarchy: hierarchy.root,
    owner: running.join(" ") } },
  head, notes(hierarchy), table,
  selected ? details(selected, store) : null);
}

function resourceRow(resource, level, nodes, status, store) {
  const pick = () => {
    store.selected = store.selected === resource.tag ? null : resource.tag;
    redraw(true);
  };
  return h("tr", { class: `resource${store.selected === resource.tag ? " selected" : ""}`,
    dataset: { resource: resource.tag }, onclick: pick, tabindex: 0,
    onkeydown: (e) => { if (e.key === "Enter") pick(); } },
  h("td", {}, h("span", { class: "tag-cell", style: `padding-left:${level * 1.5}rem` },
    level ? h("span", { class: "branch" }, "└─ ") : null,
    h("span", { class: "tag" }, resource.tag),
    h("span", { class: "kit" }, resource.kit))),
  nodes.map((node) => {
    // A node not heard now: UNKNOWN, not its last word (an "ISP" from a dead owner
    // beside the new owner's would read as two owners); the last word in the tooltip.
    const { state, stale } = stateOn(resource, node, status);
    return h("td", { class: "node-col", dataset: { node, state: stale ? "UNKNOWN" : state } },
      stale ? chip("UNKNOWN", { class: "chip state-unknown stale",
        title: t("hierarchy.stale", { state }) }) : chip(state));
  }));
}

// Under a hierarchy: its failover hold, why each node sees it running nowhere, its
// dependencies on other hierarchies, a multi-node hierarchy's instances (tutela status).
function notes(hierarchy) {
  const lines = [];
  const ownership = hierarchy.ownership || {};
  if (ownership.hold) lines.push(t("hierarchy.hold", ownership.hold));
  for (const stuck of ownership.stuck || []) lines.push(`${stuck.node}: ${stuck.message}`);
  for (const dependency of hierarchy.dependencies || []) {
    lines.push(t(dependency.met ? "hierarchy.dependency.met" : "hierarchy.dependency.unmet",
      { text: dependency.text, nodes: (dependency.up_on || []).join(", ") || "-" }));
  }
  const instances = hierarchy.instances;
  if (instances) {
    lines.push(t("hierarchy.instances", { in_service: instances.in_service,
      min: instances.min_instances, max: instances.max_instances ?? "-" }));
  }
  return lines.length ? h("ul", { class: "notes" }, lines.map((line) => h("li", {}, line))) : null;
}

function actions(hierarchy, status, nodes, running) {
  const root = hierarchy.root;
  const buttons = [h("button", { type: "button", class: "small", dataset: { action: "why" },
    onclick: () => whyDialog(root) }, t("action.why"))];
  if (may("operate", root)) {
    buttons.push(
      h("button", { type: "button", class: "small", dataset: { action: "restore" },
        onclick: () => act(t("action.restore.of", { tag: root }), () => api.restore(root)) },
      t("action.restore")),
      h("button", { type: "button", class: "small", dataset: { action: "remove" },
        onclick: () => act(t("action.remove.of", { tag: root }), () => api.remove(root)) },
      t("action.remove")),
      switchover(root, nodes.filter((n) => !running.includes(n) && alive(n, status))));
  }
  if (may("configure", root)) {
    buttons.push(h("button", { type: "button", class: "small", dataset: { action: "extend" },
      onclick: () => extendWizard(hierarchy, status) }, t("wizard.extend.button")));
  }
  return h("div", { class: "actions" }, buttons);
}

// The node chosen for each hierarchy's switchover, kept when the view is drawn again.
const switchoverTargets = {};

function switchover(root, targets) {
  const select = h("select", { class: "small", "aria-label": t("action.switchover.to"),
    dataset: { switchoverTarget: root },
    onchange: () => { switchoverTargets[root] = select.value; } },
  targets.map((node) => h("option", { value: node, selected: switchoverTargets[root] === node },
    node)));
  return h("span", { class: "switchover" }, select,
    h("button", { type: "button", class: "small primary", dataset: { action: "switchover" },
      disabled: !targets.length,
      onclick: () => act(t("action.switchover.of", { tag: root, node: select.value }),
        () => api.switchover(root, select.value)) }, t("action.switchover")));
}

function details(resource, store) {
  const history = store.events.filter((e) => e.subject === resource.tag);
  const recoveries = history.filter((e) => e.kind === "recovery.local");
  const failure = [...history].reverse().find((e) => e.severity === "error");
  const facts = [
    [t("details.kit"), resource.kit],
    [t("details.state"), resource.state],
    [t("details.reason"), resource.reason || "-"],
    [t("details.since"), clock(resource.since)],
    // tutelad's status gives no time of the last quick check yet: shown once it does
    resource.last_check ? [t("details.last_check"), clock(resource.last_check)] : null,
    [t("details.recoveries"), resource.recoveries ?? recoveries.length],
    [t("details.last_error"), resource.last_error
      || (failure ? `${clock(failure.at)} ${failure.node}: ${failure.cause}` : "-")],
    [t("details.depends_on"), resource.depends_on.join(", ") || "-"],
  ];
  return h("div", { class: "details", dataset: { details: resource.tag } },
    h("h4", {}, t("details.title", { tag: resource.tag })),
    h("div", { class: "details-grid" },
      h("dl", { class: "facts" }, facts.filter(Boolean).map(([k, v]) =>
        [h("dt", {}, k), h("dd", {}, String(v))])),
      h("div", {}, h("h5", {}, t("details.params")),
        h("dl", { class: "facts mono" }, Object.entries(resource.params || {}).map(([k, v]) =>
          [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))])))));
}

export async function whyDialog(tag) {
  const body = h("div", { class: "why" }, h("p", { class: "muted" }, t("loading")));
  openDialog(t("why.title", { tag }), body,
    [h("button", { type: "button", class: "primary", onclick: closeDialog }, t("action.close"))]);
  try {
    const answer = await api.why(tag);
    const explanation = answer.explanation;
    replace(body, explanation
      ? h("ol", {}, explanation.sentences.map((s) => h("li", {}, s)))
      : h("p", { class: "muted" }, t("why.nothing")),
    (answer.notes || []).map((note) => h("p", { class: "muted" }, note)));
  } catch (error) {
    replace(body, h("p", { class: "error" }, error.message));
  }
}
