// One modal <dialog> for confirmations and wizards. A wizard's form shows the server's
// refusal at the field it names (problems[].field), the rest above its buttons.

import { h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { errorText } from "./main.js";

const dialog = () => document.getElementById("dialog");

export function openDialog(title, body, buttons, id = "") {
  const element = dialog();
  element.id = "dialog";
  element.dataset.wizard = id;
  replace(element, h("form", { method: "dialog", class: "dialog-form" },
    h("h2", {}, title), body, h("p", { class: "error form-error", role: "alert" }),
    h("div", { class: "buttons" }, buttons)));
  if (!element.open) element.showModal();
  return element.querySelector("form");
}

export function closeDialog() {
  const element = dialog();
  if (element.open) element.close();
  replace(element);
}

export function confirmDialog(title, text) {
  return new Promise((resolve) => {
    const done = (answer) => () => { closeDialog(); resolve(answer); };
    openDialog(title, h("p", {}, text), [
      h("button", { type: "button", onclick: done(false) }, t("action.cancel")),
      h("button", { type: "button", class: "primary", id: "confirm", onclick: done(true) },
        t("action.confirm"))]);
  });
}

// A labelled field; `name` is what the server calls it in problems[].field.
export function field(name, label, input, help = "") {
  return h("label", { class: "field", dataset: { field: name } },
    h("span", { class: "field-label" }, label), input,
    help ? h("small", { class: "help" }, help) : null,
    h("small", { class: "field-error", role: "alert" }));
}

export function clearErrors(form) {
  for (const element of form.querySelectorAll(".field-error, .form-error")) element.textContent = "";
  for (const element of form.querySelectorAll(".invalid")) element.classList.remove("invalid");
}

// Puts each problem at its field: "params.address", "resources[web].params.address" or
// "params" + "address" find the field named "params.address"; "tag" the field "tag".
// The rest goes above the buttons.
export function showErrors(form, error) {
  clearErrors(form);
  const loose = [];
  for (const problem of error.problems || []) {
    const text = `${problem.message}${problem.fix ? ` — ${problem.fix}` : ""}`;
    const target = fieldFor(form, problem.field || "");
    if (target) {
      target.classList.add("invalid");
      target.querySelector(".field-error").textContent = text;
    } else {
      loose.push(problem.field ? `${problem.field}: ${text}` : text);
    }
  }
  if (!(error.problems || []).length) loose.push(errorText(error));
  form.querySelector(".form-error").textContent = loose.join("\n");
}

function fieldFor(form, path) {
  const plain = path.replace(/^[a-z_]+\[[^\]]*\]\./, "");
  const candidates = [plain, plain.split(".").slice(-1)[0]];
  for (const name of candidates) {
    const found = [...form.querySelectorAll(".field")].find((f) => f.dataset.field === name);
    if (found) return found;
  }
  return null;
}
