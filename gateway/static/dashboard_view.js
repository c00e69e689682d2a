// The dashboard: /api/v1/stats figures, reloaded (debounced) whenever the event stream changes them.

import { duration, el } from "./format.js";

function figure(label, value, id) {
  return el("div", { class: "figure", "data-figure": id }, el("span", { class: "value" }, String(value ?? "–")), el("span", { class: "label" }, label));
}

export function renderDashboard(stats, updatedAt) {
  const section = document.getElementById("dashboard");
  if (!stats) { section.replaceChildren(el("h2", null, "Dashboard"), el("p", null, "Loading…")); return; }
  const rows = (stats.messages || []).map((m) => el("tr", null,
    el("td", null, m.channel_name || String(m.channel_id)), el("td", null, m.channel_type), el("td", null, m.direction),
    el("td", { class: "num" }, String(m.count))));
  const median = stats.first_response?.median_seconds;
  section.replaceChildren(
    el("h2", null, "Dashboard"),
    el("div", { class: "figures" },
      figure("open conversations", stats.open_conversations, "open"),
      figure("calls answered", stats.calls?.answered, "answered"),
      figure("calls missed", stats.calls?.missed, "missed"),
      figure("active calls", stats.calls?.active, "active"),
      figure("median first response", median === null || median === undefined ? "–" : duration(median), "first-response")),
    el("h3", null, "Messages by channel and direction"),
    rows.length
      ? el("table", null, el("thead", null, el("tr", null, el("th", { scope: "col" }, "channel"), el("th", { scope: "col" }, "type"),
        el("th", { scope: "col" }, "direction"), el("th", { scope: "col" }, "messages"))), el("tbody", null, ...rows))
      : el("p", null, "No messages yet."),
    el("p", { class: "note" }, "Updated live · " + updatedAt.toLocaleTimeString()));
}
