// The event timeline: the merged journals of every reachable node, newest first, live from
// the event stream; a hierarchy's move (restore.finished, restore.failed, takeover.blocked)
// has a "why" button with `tutela why`'s explanation.

import { chip, clock, h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { redraw } from "./main.js";
import { whyDialog } from "./hierarchies.js";

const MOVES = new Set(["restore.finished", "restore.failed", "takeover.blocked", "lease.won"]);
const SHOWN = 200;
const filters = { hierarchy: "", severity: "" };

export function renderTimeline(view, store) {
  const roots = store.status.hierarchies.map((x) => x.root);
  const tagsOf = Object.fromEntries(store.status.hierarchies.map((x) =>
    [x.root, new Set(x.resources.map((r) => r.tag))]));
  const wanted = (record) =>
    (!filters.severity || record.severity === filters.severity)
    && (!filters.hierarchy || tagsOf[filters.hierarchy]?.has(record.subject)
      || record.correlation?.startsWith(`${filters.hierarchy}/`));
  const records = store.events.filter(wanted).slice(-SHOWN).reverse();
  replace(view,
    h("div", { class: "toolbar" }, h("h2", {}, t("nav.timeline")), h("div", { class: "spacer" }),
      filter("hierarchy", t("timeline.all_hierarchies"), roots),
      filter("severity", t("timeline.all_severities"), ["info", "warning", "error"])),
    records.length
      ? h("table", { class: "timeline card" },
        h("thead", {}, h("tr", {}, ["time", "node", "severity", "kind", "subject", "cause", ""]
          .map((name) => h("th", {}, name ? t(`timeline.${name}`) : "")))),
        h("tbody", {}, records.map((record) => row(record, roots))))
      : h("p", { class: "card muted" }, t("timeline.empty")));
}

function filter(name, all, values) {
  const select = h("select", { dataset: { filter: name }, onchange: () => {
    filters[name] = select.value;
    redraw(true);
  } }, h("option", { value: "" }, all),
  values.map((value) => h("option", { value, selected: filters[name] === value }, value)));
  return select;
}

function row(record, roots) {
  const root = roots.includes(record.subject) ? record.subject : null;
  return h("tr", { class: `sev-${record.severity}`, dataset: { kind: record.kind } },
    h("td", { class: "mono nowrap" }, clock(record.at)),
    h("td", {}, record.node),
    h("td", {}, chip(record.severity)),
    h("td", { class: "mono nowrap" }, record.kind),
    h("td", {}, record.subject),
    h("td", { class: "cause" }, record.cause),
    h("td", {}, root && MOVES.has(record.kind)
      ? h("button", { type: "button", class: "small", dataset: { why: root },
        onclick: () => whyDialog(root) }, t("action.why")) : null));
}
