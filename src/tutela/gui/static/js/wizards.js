// Wizards: a resource of any kit (its fields, help and defaults from the kit's parameter
// model), extending a hierarchy to a node, a dependency. The page checks what it can
// (required fields, the tag's form); the server's refusal lands at the field it names.

import { api } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { refreshSoon, toast } from "./main.js";
import { clearErrors, closeDialog, field, openDialog, showErrors } from "./dialogs.js";

const TAG_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.\\-]*";

function submitButtons(label) {
  return [h("button", { type: "button", onclick: closeDialog }, t("action.cancel")),
    h("button", { type: "submit", class: "primary", value: "submit" }, label)];
}

// Sends the form's request; on success closes and says so, else shows the problems.
function onSubmit(form, send, done) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!form.reportValidity()) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await send();
      closeDialog();
      toast(done, "ok");
      refreshSoon();
    } catch (error) {
      showErrors(form, error);
    } finally {
      button.disabled = false;
    }
  });
}

// --- create a resource -----------------------------------------------------------------
export async function createResourceWizard(status) {
  const kitSelect = h("select", { name: "kit", required: true },
    h("option", { value: "" }, t("wizard.create.pick_kit")));
  const paramsBox = h("div", { class: "params" });
  const tags = status.hierarchies.flatMap((x) => x.resources.map((r) => r.tag));
  const body = h("div", { class: "wizard" },
    field("kit", t("wizard.create.kit"), kitSelect),
    field("tag", t("wizard.create.tag"), h("input", { name: "tag", required: true,
      pattern: TAG_PATTERN, autocomplete: "off" }), t("wizard.create.tag_help")),
    paramsBox,
    field("depends_on", t("wizard.create.depends_on"),
      h("select", { name: "depends_on", multiple: true, size: Math.min(4, tags.length || 1) },
        tags.map((tag) => h("option", { value: tag }, tag))), t("wizard.create.depends_on_help")),
    field("restore", t("wizard.create.restore"), h("input", { type: "checkbox", name: "restore",
      checked: true })));
  const form = openDialog(t("wizard.create.title"), body, submitButtons(t("wizard.create.submit")),
    "create");
  let kit = null;
  kitSelect.addEventListener("change", async () => {
    kit = kitSelect.value ? await api.kit(kitSelect.value) : null;
    paramsBox.replaceChildren(...(kit ? kit.params.map((p) => paramField(p, kit.schema)) : []));
  });
  onSubmit(form, () => api.createResource(resourceFrom(form, kit)),
    t("wizard.create.done"));
  try {
    const kits = await api.kits();
    const group = (label, rows) => h("optgroup", { label }, rows.map((k) =>
      h("option", { value: k.kit, disabled: Boolean(k.unsupported),
        title: k.unsupported || k.description }, `${k.kit} — ${k.description}`)));
    kitSelect.append(group(t("wizard.create.builtin"), kits.filter((k) => k.type !== "ocf")),
      group(t("wizard.create.ocf"), kits.filter((k) => k.type === "ocf")));
  } catch (error) {
    showErrors(form, error);
  }
}

// One input per parameter of the kit's model (GET /kits/NAME: rows of name, type,
// required, default, description; a built-in kit's JSON schema too): a choice for a fixed
// set of values and for yes/no, numbers as numbers within the schema's bounds, the rest as
// text. The browser checks those; the server checks everything again.
function paramField(param, schema) {
  const rule = schema?.properties?.[param.name] || {};
  const shown = param.default === null || param.default === "None" ? "" : param.default;
  const name = `params.${param.name}`;
  const label = param.required ? `${param.name} *` : param.name;
  const choices = rule.enum || (rule.type === "boolean" || param.type === "bool"
    ? ["true", "false"] : null);
  if (choices) {
    const first = param.required ? t("wizard.create.pick")
      : t("wizard.create.default", { value: shown });
    return field(name, label, h("select", { name, required: param.required },
      h("option", { value: "" }, first),
      choices.map((choice) => h("option", { value: String(choice) }, String(choice)))),
    param.description || "");
  }
  const numeric = ["integer", "number"].includes(rule.type)
    || ["int", "float", "integer"].includes(param.type);
  const input = h("input", { name, required: param.required, autocomplete: "off",
    type: numeric ? "number" : "text",
    step: rule.type === "integer" || ["int", "integer"].includes(param.type) ? "1" : "any",
    min: rule.minimum ?? rule.exclusiveMinimum, max: rule.maximum ?? rule.exclusiveMaximum,
    placeholder: shown ? t("wizard.create.default", { value: shown }) : "" });
  return field(name, label, input, param.description || "");
}

// "[a, b]", "{k: v}", JSON lists and maps are sent as such; anything else as typed.
function valueOf(text) {
  if (/^[[{]/.test(text)) {
    try { return JSON.parse(text); } catch { return text; }
  }
  return text;
}

function resourceFrom(form, kit) {
  const params = {};
  for (const input of form.querySelectorAll("[name^='params.']")) {
    if (input.value !== "") params[input.name.slice(7)] = valueOf(input.value);
  }
  return {
    kit: kit ? kit.kit : form.kit.value,
    tag: form.tag.value,
    params,
    depends_on: [...form.depends_on.selectedOptions].map((o) => o.value),
    restore: form.restore.checked,
  };
}

// --- extend a hierarchy ----------------------------------------------------------------
export function extendWizard(hierarchy, status) {
  const present = new Set(Object.keys(hierarchy.resources[0]?.elsewhere || {}));
  const nodes = status.nodes.map((n) => n.name).filter((n) => !present.has(n) && n !== status.node);
  const choices = nodes.length ? nodes : status.nodes.map((n) => n.name);
  const body = h("div", { class: "wizard" },
    h("p", { class: "muted" }, t("wizard.extend.intro", { tag: hierarchy.root })),
    field("to", t("wizard.extend.node"), h("select", { name: "to", required: true },
      choices.map((n) => h("option", { value: n }, n)))),
    field("priority", t("wizard.extend.priority"), h("input", { name: "priority", type: "number",
      min: 1, required: true, value: present.size + 2 }), t("wizard.extend.priority_help")));
  const form = openDialog(t("wizard.extend.title", { tag: hierarchy.root }), body,
    submitButtons(t("wizard.extend.submit")), "extend");
  onSubmit(form, () => api.extend(hierarchy.root, form.to.value, Number(form.priority.value)),
    t("wizard.extend.done"));
}

// --- add a dependency ------------------------------------------------------------------
export function dependencyWizard(status) {
  const tags = status.hierarchies.flatMap((x) => x.resources.map((r) => r.tag));
  const options = () => tags.map((tag) => h("option", { value: tag }, tag));
  const body = h("div", { class: "wizard" },
    h("p", { class: "muted" }, t("wizard.dependency.intro")),
    field("parent", t("wizard.dependency.parent"), h("select", { name: "parent" }, options())),
    field("child", t("wizard.dependency.child"), h("select", { name: "child" }, options())));
  const form = openDialog(t("wizard.dependency.title"), body,
    submitButtons(t("wizard.dependency.submit")), "dependency");
  onSubmit(form, () => api.addDependency(form.parent.value, form.child.value),
    t("wizard.dependency.done"));
}
