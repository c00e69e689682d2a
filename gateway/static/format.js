// Pure helpers: building DOM nodes from text, and local, relative times.
// Every string from the API goes in as a text node, never as markup.

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === "" || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayClock = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function parseTime(iso) {
  if (!iso) return null;
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? null : t;
}

// "just now", "5 min", "14:02", "Mar 3, 14:02": short enough for a list row.
export function relativeTime(iso, now = new Date()) {
  const t = parseTime(iso);
  if (!t) return "";
  const seconds = (now - t) / 1000;
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (t.toDateString() === now.toDateString()) return clock.format(t);
  return dayClock.format(t);
}

export function localTime(iso) {
  const t = parseTime(iso);
  return t ? dayClock.format(t) : "";
}

export function fullTime(iso) {
  const t = parseTime(iso);
  return t ? full.format(t) : "";
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

export function contactName(conversation) {
  return conversation?.contact?.name || `contact ${conversation?.contact?.id ?? "?"}`;
}

// What a list row shows for the newest message or call.
export function preview(entry) {
  if (!entry) return "";
  const it = entry.item;
  if (entry.kind === "call") return `📞 ${it.direction === "outbound" ? "outgoing" : "incoming"} call · ${it.disposition || it.status || ""}`;
  if (it.deleted_at) return "message deleted";
  const prefix = it.direction === "outbound" ? "You: " : "";
  return prefix + (it.text || `[${it.type}]`);
}
