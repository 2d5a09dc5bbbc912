// Message catalogues (i18n/en.json, i18n/ja.json: the same keys, a test checks it). t(key,
// {name}) fills "{name}" placeholders; the language is the user's choice, kept in the
// browser, else the browser's own when it is Japanese.

const LANGUAGES = ["en", "ja"];
const STORAGE_KEY = "tutela.language";
let messages = {};
let fallback = {};
let current = "en";

export function language() {
  return current;
}

export function preferredLanguage() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (LANGUAGES.includes(saved)) return saved;
  return (navigator.language || "").startsWith("ja") ? "ja" : "en";
}

async function catalogue(name) {
  const response = await fetch(`i18n/${name}.json`, { cache: "no-cache" });
  if (!response.ok) throw new Error(`catalogue ${name}: HTTP ${response.status}`);
  return response.json();
}

export async function setLanguage(name) {
  if (!LANGUAGES.includes(name)) name = "en";
  if (!Object.keys(fallback).length) fallback = await catalogue("en");
  messages = name === "en" ? fallback : await catalogue(name);
  current = name;
  localStorage.setItem(STORAGE_KEY, name);
  document.documentElement.lang = name;
  translateStatic(document);
}

export function t(key, values = {}) {
  const text = messages[key] ?? fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// Elements of the page shell carry data-i18n="KEY" (their text) or
// data-i18n-placeholder="KEY".
export function translateStatic(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
}
