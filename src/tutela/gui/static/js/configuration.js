// The configuration as YAML (tutela export), edited in place: "dry run" shows what would
// change (tutela apply --dry-run); "apply" is offered only for the text that dry run
// checked, and applies it as one change.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { act, errorText, refreshSoon } from "./main.js";

export function renderConfiguration(view) {
  const editor = h("textarea", { id: "yaml", spellcheck: "false", class: "mono" });
  const result = h("div", { id: "dry-run", class: "diff" });
  const apply = h("button", { type: "button", class: "primary", id: "apply", disabled: true },
    t("config.apply"));
  let checked = null;
  editor.addEventListener("input", () => { apply.disabled = editor.value !== checked; });
  const load = async () => {
    try {
      const answer = await api.exportYaml();
      editor.value = answer.yaml;
      replace(result, h("p", { class: "muted" }, t("config.generation",
        { generation: answer.generation })));
    } catch (error) {
      replace(result, h("p", { class: "error" }, errorText(error)));
    }
    checked = null;
    apply.disabled = true;
  };
  const dryRun = async () => {
    try {
      const answer = await api.apply(editor.value, true);
      checked = editor.value;
      apply.disabled = !answer.changes.length;
      replace(result, diffView(answer));
    } catch (error) {
      checked = null;
      apply.disabled = true;
      replace(result, problems(error));
    }
  };
  apply.addEventListener("click", () => act(t("config.apply"), async () => {
    await api.apply(checked, false);
    await load();
    refreshSoon();
  }));
  replace(view,
    h("div", { class: "toolbar" }, h("h2", {}, t("nav.configuration")), h("div", { class: "spacer" }),
      h("button", { type: "button", onclick: load }, t("config.reload")),
      h("button", { type: "button", id: "dry-run-button", onclick: dryRun }, t("config.dry_run")),
      apply),
    h("div", { class: "config-grid" }, h("div", { class: "card" }, editor),
      h("div", { class: "card" }, h("h3", {}, t("config.changes")), result)));
  load();
}

function diffView(answer) {
  if (!answer.changes.length) return h("p", { class: "muted" }, t("config.no_changes"));
  return [h("p", {}, t("config.would_change", { count: answer.changes.length })),
    h("pre", { class: "mono" }, answer.changes.map((line) =>
      h("span", { class: `diff-${{ "+": "add", "-": "del", "~": "mod" }[line[0]] || "mod"}` },
        `${line}\n`))),
    (answer.warnings || []).map((w) => h("p", { class: "problem" }, w))];
}

function problems(error) {
  if (!error.problems?.length) return h("p", { class: "error" }, errorText(error));
  return h("ul", { class: "error" }, error.problems.map((p) =>
    h("li", {}, h("b", {}, p.field || ""), ` ${p.message}`, p.fix ? h("div", { class: "muted" },
      `${t("config.fix")} ${p.fix}`) : null)));
}
