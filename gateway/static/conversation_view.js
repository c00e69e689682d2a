// One conversation: its header (contact, channel, status, assignee and actions) and its
// timeline of messages and calls. Media is fetched with the key and shown from object URLs.

import { contactName, duration, el, fullTime, localTime } from "./format.js";
import { entryKey, state } from "./state.js";

const $ = (id) => document.getElementById(id);

// Channels that carry text replies; an Asterisk conversation is calls only.
export function canSend(conversation) {
  return conversation && conversation.channel_type !== "asterisk";
}

export function renderHeader(c, actions) {
  const header = $("conv-header");
  if (!c) { header.hidden = true; header.replaceChildren(); return; }
  header.hidden = false;
  const mine = !!state.agent && c.assignee === state.agent;
  const resolved = c.status === "resolved";
  header.replaceChildren(
    el("button", { type: "button", class: "back", "aria-label": "Back to the list", onclick: actions.back }, "←"),
    el("div", { class: "who" },
      el("h2", null, el("button", { type: "button", class: "link", id: "contact-open", onclick: actions.contact,
        "aria-label": `Contact details: ${contactName(c)}` }, contactName(c))),
      el("div", { class: "meta" },
        el("span", { class: "chip channel" }, c.channel_type || "channel"), " ",
        el("span", { class: "chip status-" + (c.status || "") , id: "conv-status" }, c.status || ""), " ",
        el("span", { id: "conv-assignee" }, c.assignee ? "assigned to " + c.assignee : "unassigned"))),
    el("div", { class: "actions" },
      mine
        ? el("button", { type: "button", id: "unassign", onclick: actions.unassign }, "Unassign")
        : el("button", { type: "button", id: "assign-me", onclick: actions.assignMe }, "Assign to me"),
      resolved
        ? el("button", { type: "button", id: "reopen", onclick: actions.reopen }, "Reopen")
        : el("button", { type: "button", id: "resolve", onclick: actions.resolve }, "Resolve")),
  );
}

function ticks(m) {
  const label = { pending: "sending", sent: "sent", delivered: "delivered", read: "read", played: "played", failed: "failed" }[m.status];
  const mark = { pending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", played: "✓✓", failed: "!" }[m.status];
  if (!mark) return null;
  return el("span", { class: `ticks ticks-${m.status}`, title: label, "aria-label": label, "data-status": m.status }, mark);
}

function mediaNode(m, ctx) {
  const name = m.name || m.mime_type || "file";
  // Only the gateway's own media paths: never a foreign or javascript: URL from data.
  if (typeof m.url !== "string" || !m.url.startsWith("/api/v1/media/")) return el("span", { class: "media-missing" }, name);
  if (m.status && m.status !== "stored") return el("span", { class: "media-missing" }, `${name} (${m.status.replace("_", " ")})`);
  const mime = m.mime_type || "";
  let node;
  if (mime.startsWith("image/")) node = el("img", { class: "media-image", alt: name });
  else if (mime.startsWith("audio/")) node = el("audio", { controls: true, preload: "metadata", "aria-label": name });
  else if (mime.startsWith("video/")) node = el("video", { controls: true, preload: "metadata", "aria-label": name });
  if (node) {
    ctx.api.mediaUrl(m.url).then((url) => { node.src = url; }).catch((e) => node.replaceWith(el("span", { class: "media-missing" }, `${name}: ${e.message}`)));
    return el("div", { class: "media" }, node);
  }
  const link = el("button", { type: "button", class: "download", onclick: async () => {
    try {
      const url = await ctx.api.mediaUrl(m.url);
      const a = el("a", { href: url, download: name });
      document.body.append(a); a.click(); a.remove();
    } catch (e) { ctx.showError(e.message); }
  } }, `⬇ ${name}`);
  return el("div", { class: "media" }, link);
}

function quote(m) {
  if (!m.reply_to_id) return null;
  const original = state.timeline.find((e) => e.kind === "message" && e.item.id === m.reply_to_id);
  const text = original ? (original.item.text || `[${original.item.type}]`) : "an earlier message";
  return el("blockquote", { class: "quote" }, "↩ ", text.length > 120 ? text.slice(0, 120) + "…" : text);
}

function renderMessage(m, ctx) {
  const outbound = m.direction === "outbound";
  const failed = m.status === "failed";
  const body = m.deleted_at
    ? el("p", { class: "text deleted" }, "This message was deleted")
    : el("p", { class: "text" }, m.text || (m.media?.length ? "" : `[${m.type}]`));
  const reactions = (m.reactions || []).length
    ? el("div", { class: "reactions", "aria-label": "reactions" }, ...m.reactions.map((r) => el("span", { class: "reaction" }, r.emoji)))
    : null;
  const meta = el("small", { class: "meta" },
    m.sender?.name || m.author?.name || "", m.sender?.name || m.author?.name ? " · " : "",
    el("time", { datetime: m.created_at || "", title: fullTime(m.created_at) }, localTime(m.created_at)),
    m.edited_at ? el("span", { class: "edited", title: "edited " + fullTime(m.edited_at) }, " · edited") : null,
    outbound ? " " : null, outbound ? ticks(m) : null);
  const failure = failed
    ? el("div", { class: "failure" },
      el("span", { class: "reason" }, "Not delivered: " + (m.error?.message || m.error?.code || "the provider refused it")),
      !m.deleted_at && m.text ? el("button", { type: "button", class: "retry", onclick: () => ctx.retry(m) }, "Retry") : null)
    : null;
  return el("article", { class: `item message ${outbound ? "outbound" : "inbound"}${failed ? " failed" : ""}`, "data-key": `message:${m.id}` },
    quote(m), body, ...(m.deleted_at ? [] : (m.media || []).map((x) => mediaNode(x, ctx))), reactions, meta, failure);
}

function renderCall(c, ctx) {
  const inbound = c.direction !== "outbound";
  const missed = c.status === "ended" && c.disposition !== "answered" && inbound;
  const who = inbound ? (c.caller_name || c.from_number || "unknown") : (c.to_number || "");
  const title = missed ? `Missed call from ${who}` : inbound ? `Incoming call from ${who}` : `Outgoing call to ${who}`;
  const details = [
    localTime(c.started_at),
    c.agent ? "agent " + c.agent : "",
    c.status !== "ended" ? c.status : (c.disposition || ""),
    c.billsec ? "talked " + duration(c.billsec) : "",
  ].filter(Boolean).join(" · ");
  const number = inbound ? c.from_number : c.to_number;
  return el("article", { class: `item call${missed ? " missed" : ""}`, "data-key": `call:${c.id}` },
    el("p", { class: "text" }, (missed ? "☎ " : "📞 ") + title),
    el("small", { class: "meta" }, details),
    c.recording ? mediaNode({ ...c.recording, mime_type: c.recording.mime_type || "audio/wav", name: c.recording.name || "call recording" }, ctx) : null,
    number ? el("button", { type: "button", class: "call-back", onclick: () => ctx.callBack(c, number) }, "Call back") : null);
}

export function renderEntry(entry, ctx) {
  return entry.kind === "call" ? renderCall(entry.item, ctx) : renderMessage(entry.item, ctx);
}

export function renderTimeline(ctx) {
  const timeline = $("timeline");
  if (!state.timeline.length) {
    timeline.replaceChildren(el("div", { class: "empty" }, el("p", null, "No messages or calls yet.")));
    return;
  }
  timeline.replaceChildren(...state.timeline.map((e) => renderEntry(e, ctx)));
  timeline.scrollTop = timeline.scrollHeight;
}

// Replace one entry in place (status ticks, reactions), keeping players of the others untouched.
export function updateEntry(entry, ctx, isNew) {
  const timeline = $("timeline");
  const node = timeline.querySelector(`[data-key="${entryKey(entry)}"]`);
  const last = state.timeline[state.timeline.length - 1];
  if (isNew && last === entry && timeline.querySelector("[data-key]")) {
    // Appended, not re-rendered: the live region then announces only the new message.
    const atBottom = timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 80;
    timeline.append(renderEntry(entry, ctx));
    if (atBottom || entry.item.direction === "outbound") timeline.scrollTop = timeline.scrollHeight;
    return;
  }
  if (!node || isNew) { renderTimeline(ctx); return; }
  node.replaceWith(renderEntry(entry, ctx));
}
