// The inbox page: wires the REST API, the event stream and the views together.
// Every provider- or user-supplied string is rendered as text (see format.js), and the API key
// never goes into a URL or the console: the WebSocket carries it as a Sec-WebSocket-Protocol value.

import { createApi, enc } from "./api.js";
import { el } from "./format.js";
import { entryKey, putConversation, remember, state, tabQuery, unreadTotal, upsertEntry } from "./state.js";
import { Stream } from "./stream.js";
import { renderContact } from "./contact_view.js";
import { canSend, renderHeader, renderTimeline, updateEntry } from "./conversation_view.js";
import { renderDashboard } from "./dashboard_view.js";
import { listKeys, renderList } from "./list_view.js";

const $ = (id) => document.getElementById(id);
const api = createApi(() => state.key);
let stats = null, statsTimer = null, listGeneration = 0;
let draftKey = null, draftText = null; // one Idempotency-Key per draft: a repeated Send never sends twice

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// A key in the page's link (?token= or #token=) never replaces the stored one
// silently: a link from someone else would log this browser into their account.
function keyFromLink() {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  const offered = query.get("token") || fragment.get("token");
  if (query.has("token") || fragment.has("token")) {
    query.delete("token");
    fragment.delete("token");
    const search = query.toString(), hash = fragment.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : "") + (hash ? "#" + hash : ""));
  }
  if (!offered || offered === state.key) return;
  const shown = offered.slice(0, 10) + "…";
  if (confirm(`Use the API key ${shown} from the link you opened? Only accept a link you asked for.`)) {
    remember("key", offered);
  }
}

// --- errors and status --------------------------------------------------------------------

function showError(message) {
  const box = $("error");
  box.hidden = false;
  box.replaceChildren(el("span", null, message), " ",
    el("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", onclick: clearError }, "×"));
}

function clearError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

function setStatus(stateName, text) {
  const node = $("status");
  node.dataset.state = stateName;
  node.textContent = text;
  if (stateName === "invalid-key") { stream.stop(); showError("invalid key: check the API key and press Connect."); }
}

function updateTitle() {
  const n = unreadTotal();
  document.title = (n ? `(${n}) ` : "") + "inbox-gateway · inbox";
}

// --- list ---------------------------------------------------------------------------------

function refreshList() {
  renderList(open);
  updateTitle();
}

async function loadList() {
  const generation = ++listGeneration;
  state.loaded = false;
  refreshList();
  if (state.tab === "mine" && !state.agent) { state.loaded = true; refreshList(); return; }
  const params = tabQuery(state.tab, state.agent);
  if (state.q) params.set("q", state.q);
  try {
    const page = await api.request("/api/v1/conversations?" + params);
    if (generation !== listGeneration) return;
    for (const c of page.items) putConversation(c);
    state.searchIds = state.q ? new Set(page.items.map((c) => c.id)) : null;
    state.loaded = true;
    refreshList();
    // Signed in and nothing open: the welcome's "paste a key" no longer applies.
    if (state.current === null && page.items.length) {
      $("timeline").replaceChildren(el("p", { class: "empty" }, "Pick a conversation."));
    }
    loadPreviews(page.items.filter((c) => !state.previews.has(c.id)).slice(0, 50));
  } catch (e) {
    if (e.status === 401) setStatus("invalid-key", "invalid key");
    else showError("Could not load conversations: " + e.message);
  }
}

// The list has no last-message field: ask each shown conversation for its newest entry, a few at a time.
async function loadPreviews(conversations) {
  const queue = [...conversations];
  const worker = async () => {
    while (queue.length) {
      const c = queue.shift();
      try {
        const page = await api.request(`/api/v1/conversations/${enc(c.id)}/timeline?order=desc&limit=1`);
        if (page.items[0] && !state.previews.has(c.id)) state.previews.set(c.id, page.items[0]);
      } catch { /* a preview is optional */ }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  refreshList();
}

// --- one conversation ---------------------------------------------------------------------

const timelineCtx = { api, showError, retry: (m) => send(m.text, { retryOf: m }), callBack };

const headerActions = {
  back: () => closeConversation(),
  contact: () => openContact(),
  assignMe: () => change({ assignee: state.agent }, "assign"),
  unassign: () => change({ assignee: null }, "unassign"),
  resolve: () => change({ status: "resolved" }, "resolve"),
  reopen: () => change({ status: "open" }, "reopen"),
};

async function open(id) {
  const c = state.conversations.get(id);
  if (!c) return;
  clearError();
  state.current = id;
  state.timeline = [];
  document.body.dataset.pane = "conversation";
  renderHeader(c, headerActions);
  if (!$("contact").hidden) openContact();
  const sendable = canSend(c);
  $("reply").hidden = !sendable;
  $("composer-note").hidden = sendable;
  $("composer-note").textContent = sendable ? "" : "Calls only: this channel cannot send messages. Use Call back on a call.";
  refreshList();
  $("timeline").replaceChildren(el("p", { class: "empty" }, "Loading…"));
  try {
    const page = await api.request(`/api/v1/conversations/${enc(id)}/timeline?order=desc&limit=200`);
    if (state.current !== id) return;
    // Events that arrived during the fetch are already in state.timeline and may be newer.
    for (const entry of page.items.reverse()) upsertEntry(entry);
    if (state.timeline.length) state.previews.set(id, state.timeline[state.timeline.length - 1]);
    renderTimeline(timelineCtx);
  } catch (e) {
    showError("Could not load the conversation: " + e.message);
  }
  if (c.unread_count) markRead(id);
}

async function markRead(id) {
  try {
    const updated = await api.request(`/api/v1/conversations/${enc(id)}/read`, { method: "POST" });
    applyConversation(updated);
  } catch (e) { showError("Could not mark as read: " + e.message); }
}

function closeConversation() {
  const id = state.current;
  state.current = null;
  state.timeline = [];
  document.body.dataset.pane = "list";
  renderHeader(null);
  renderContact(null);
  $("reply").hidden = true;
  $("composer-note").hidden = true;
  $("timeline").replaceChildren(el("p", { class: "empty" }, "Pick a conversation."));
  refreshList();
  document.querySelector(`#list .conv[data-id="${id}"]`)?.focus();
}

async function change(body, what) {
  if (what === "assign" && !state.agent) { showError("Type your name in “Your name” above to assign conversations to yourself."); $("agent").focus(); return; }
  const id = state.current;
  try {
    const updated = await api.request(`/api/v1/conversations/${enc(id)}`, { method: "PATCH", body });
    clearError();
    applyConversation(updated);
  } catch (e) { showError(`Could not ${what}: ${e.message}`); }
}

function applyConversation(update) {
  const c = putConversation(update);
  if (c.id === state.current) renderHeader(c, headerActions);
  refreshList();
}

async function openContact() {
  const c = state.conversations.get(state.current);
  if (!c) return;
  try {
    const contact = await api.request(`/api/v1/contacts/${enc(c.contact.id)}`);
    const others = [...state.conversations.values()].filter((x) => x.contact?.id === contact.id);
    renderContact(contact, others, { close: () => { renderContact(null); $("contact-open")?.focus(); }, open });
    $("contact").querySelector("h2")?.setAttribute("tabindex", "-1");
    $("contact").querySelector("h2")?.focus();
  } catch (e) { showError("Could not load the contact: " + e.message); }
}

async function send(text, { retryOf = null } = {}) {
  const id = state.current;
  if (!text.trim() || id === null) return;
  const fromComposer = retryOf === null;
  if (fromComposer && text !== draftText) { draftText = text; draftKey = randomId(); }
  const body = { text };
  if (retryOf?.reply_to_id) body.reply_to_id = retryOf.reply_to_id;
  $("send").disabled = true;
  try {
    const message = await api.request(`/api/v1/conversations/${enc(id)}/messages`, {
      method: "POST", body, headers: { "Idempotency-Key": fromComposer ? draftKey : `retry-${retryOf.id}-${randomId()}` },
    });
    clearError();
    if (fromComposer) { $("text").value = ""; draftText = draftKey = null; }
    onMessage(message);
  } catch (e) {
    // The typed text stays in the composer: nothing is lost when the gateway refuses it.
    showError("Not sent: " + e.message);
  } finally {
    $("send").disabled = false;
  }
}

async function callBack(call, number) {
  if (!state.extension) { showError("Type your extension above to call back."); $("extension").focus(); return; }
  try {
    const placed = await api.request("/api/v1/calls", { method: "POST",
      body: { channel_id: call.channel_id, agent: state.extension, to_number: number } });
    clearError();
    if (placed.conversation_id === state.current) onCall(placed);
  } catch (e) { showError("Could not call back: " + e.message); }
}

// --- live events --------------------------------------------------------------------------

function newer(a, b) {
  return !b || (Date.parse(a.kind === "call" ? a.item.started_at : a.item.created_at) || 0) >=
    (Date.parse(b.kind === "call" ? b.item.started_at : b.item.created_at) || 0);
}

function onEntry(entry, conversationId) {
  const previous = state.previews.get(conversationId);
  if (!previous || entryKey(previous) === entryKey(entry) || newer(entry, previous)) state.previews.set(conversationId, entry);
  if (conversationId === state.current) {
    const isNew = upsertEntry(entry);
    const kept = state.timeline.find((e) => entryKey(e) === entryKey(entry));
    updateEntry(kept, timelineCtx, isNew);
  }
  refreshList();
}

function onMessage(m) { onEntry({ kind: "message", item: m }, m.conversation_id); }
function onCall(c) { onEntry({ kind: "call", item: c }, c.conversation_id); }

function onEvent(frame) {
  const { event, data } = frame;
  if (event.startsWith("conversation.")) {
    applyConversation(data);
    // Looking at it: what arrives is read.
    if (data.id === state.current && data.unread_count && document.visibilityState === "visible") markRead(data.id);
  } else if (event.startsWith("message.")) {
    onMessage(data);
  } else if (event.startsWith("call.")) {
    onCall(data);
  }
  if (document.body.dataset.view === "dashboard") scheduleStats();
}

const stream = new Stream({ onEvent, onStatus: setStatus });

// --- dashboard ----------------------------------------------------------------------------

function scheduleStats() {
  clearTimeout(statsTimer);
  statsTimer = setTimeout(loadStats, 300);
}

async function loadStats() {
  try {
    stats = await api.request("/api/v1/stats");
    renderDashboard(stats, new Date());
  } catch (e) { showError("Could not load the dashboard: " + e.message); }
}

function showView(view) {
  document.body.dataset.view = view;
  $("dashboard").hidden = view !== "dashboard";
  $("nav-inbox").setAttribute("aria-current", view === "inbox" ? "page" : "false");
  $("nav-dashboard").setAttribute("aria-current", view === "dashboard" ? "page" : "false");
  if (view === "dashboard") { renderDashboard(stats, new Date()); loadStats(); }
}

// --- wiring -------------------------------------------------------------------------------

function connect() {
  const key = $("key").value.trim();
  if (!key) { showError("Paste an API key first."); $("key").focus(); return; }
  if (key !== state.key) {
    state.conversations.clear();
    state.previews.clear();
    if (state.current !== null) closeConversation();
  }
  remember("key", key);
  remember("agent", $("agent").value.trim());
  remember("extension", $("extension").value.trim());
  clearError();
  stream.start(key);
  loadList();
}

keyFromLink();
$("key").value = state.key;
$("agent").value = state.agent;
$("extension").value = state.extension;
window.addEventListener("hashchange", () => { keyFromLink(); $("key").value = state.key; });
$("signin").addEventListener("submit", (e) => { e.preventDefault(); connect(); });
$("agent").addEventListener("change", () => { remember("agent", $("agent").value.trim()); refreshList(); if (state.current !== null) renderHeader(state.conversations.get(state.current), headerActions); });
$("extension").addEventListener("change", () => remember("extension", $("extension").value.trim()));
for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
  tab.addEventListener("click", () => { state.tab = tab.dataset.tab; loadList(); });
}
let searchTimer = null;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { state.q = $("search").value.trim(); loadList(); }, 250);
});
$("search-form").addEventListener("submit", (e) => { e.preventDefault(); state.q = $("search").value.trim(); loadList(); });
$("list").addEventListener("keydown", listKeys);
$("reply").addEventListener("submit", (e) => { e.preventDefault(); send($("text").value); });
$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("reply").requestSubmit(); }
});
$("nav-inbox").addEventListener("click", () => showView("inbox"));
$("nav-dashboard").addEventListener("click", () => showView("dashboard"));
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  // Esc in a text field only leaves the field: a half-typed reply stays where it is.
  if (e.target.matches?.("textarea, input")) { e.target.blur(); return; }
  if (!$("contact").hidden) { renderContact(null); $("contact-open")?.focus(); }
  else if (document.body.dataset.view === "dashboard") showView("inbox");
  else if (state.current !== null) closeConversation();
});
setInterval(refreshList, 60000); // relative times age
refreshList();
if (state.key) connect();
