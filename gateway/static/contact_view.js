// The contact panel: the person's identities on each channel and their other conversations.

import { contactName, el, relativeTime } from "./format.js";
import { state } from "./state.js";

export function renderContact(contact, conversations = [], { close, open } = {}) {
  const panel = document.getElementById("contact");
  if (!contact) { panel.hidden = true; panel.replaceChildren(); return; }
  panel.hidden = false;
  const identities = (contact.identities || []).map((i) => el("li", null,
    el("span", { class: "chip channel" }, i.channel_type), " ", i.display || i.external_id,
    i.unreachable ? el("span", { class: "warn" }, " · unreachable" + (i.unreachable_reason ? ": " + i.unreachable_reason : "")) : null));
  const others = conversations.map((c) => el("li", null, el("button", { type: "button", class: "link", onclick: () => open(c.id) },
    `${c.channel_type} · ${c.status} · ${relativeTime(c.last_activity_at)}`, c.id === state.current ? " (this one)" : "")));
  panel.replaceChildren(
    el("div", { class: "panel-head" }, el("h2", null, contact.name || contactName({ contact })),
      el("button", { type: "button", class: "close", "aria-label": "Close contact panel", onclick: close }, "×")),
    contact.phone ? el("p", null, "📱 ", contact.phone) : null,
    el("h3", null, "Identities"), el("ul", { class: "identities" }, ...identities),
    el("h3", null, "Conversations"), others.length ? el("ul", { class: "others" }, ...others) : el("p", null, "Only this one."));
}
