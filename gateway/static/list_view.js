// The conversation list: tabs, rows with preview and relative time, keyboard navigation.

import { contactName, el, preview, relativeTime } from "./format.js";
import { state, visibleConversations } from "./state.js";

const $ = (id) => document.getElementById(id);

function emptyText() {
  if (!state.key) return ["Not connected.", "Paste your API key above and press Connect."];
  if (!state.loaded) return ["Loading…", ""];
  if (state.q) return ["Nothing matches this search.", "Search looks at contact names, phone numbers and handles."];
  if (state.tab === "mine" && !state.agent) return ["Who are you?", "Type your name in “Your name” above: Mine shows what is assigned to it."];
  if (state.conversations.size === 0) {
    return ["No conversations yet.",
      "Connect a channel (POST /api/v1/channels: WhatsApp, Telegram or Asterisk; see README) or run `inbox-gateway demo`. New conversations appear here live."];
  }
  return [`No ${state.tab} conversations.`, "Other tabs may have some."];
}

export function renderList(open) {
  const items = visibleConversations();
  const now = new Date();
  // Rows are rebuilt on every change: keep keyboard focus on the same conversation.
  const focused = document.activeElement?.closest?.("#list .conv")?.dataset.id;
  $("list").replaceChildren(...items.map((c) => {
    const active = c.id === state.current;
    const unread = c.unread_count ? el("span", { class: "badge", "aria-label": `${c.unread_count} unread` }, String(c.unread_count)) : null;
    const row = el("li", {
      class: "conv" + (active ? " active" : "") + (c.unread_count ? " unread" : ""),
      tabindex: "0",
      "aria-current": active ? "true" : null,
      "data-id": c.id,
      onclick: () => open(c.id),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(c.id); } },
    },
    el("div", { class: "row1" }, el("strong", { class: "name" }, contactName(c)),
      el("time", { datetime: c.last_activity_at || "", title: c.last_activity_at || "" }, relativeTime(c.last_activity_at, now))),
    el("div", { class: "row2" }, el("span", { class: "preview" }, preview(state.previews.get(c.id))), unread),
    el("div", { class: "meta" }, `${c.channel_type ?? ""} · ${c.status ?? ""}${c.assignee ? " · " + c.assignee : ""}`));
    return row;
  }));
  if (focused) document.querySelector(`#list .conv[data-id="${CSS.escape(focused)}"]`)?.focus();
  const [title, hint] = items.length ? ["", ""] : emptyText();
  $("list-empty").replaceChildren(...(title ? [el("p", { class: "empty-title" }, title), el("p", null, hint)] : []));
  for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === state.tab));
  }
}

// ↑/↓ move between rows, Home/End jump; the focused row opens with Enter.
export function listKeys(e) {
  const rows = [...document.querySelectorAll("#list .conv")];
  const at = rows.indexOf(document.activeElement);
  let next = null;
  if (e.key === "ArrowDown") next = rows[Math.min(at + 1, rows.length - 1)];
  else if (e.key === "ArrowUp") next = rows[Math.max(at - 1, 0)];
  else if (e.key === "Home") next = rows[0];
  else if (e.key === "End") next = rows[rows.length - 1];
  if (next) { e.preventDefault(); next.focus(); }
}
