// The live inbox page. Every provider- or user-supplied string is rendered as text
// (DOM nodes and textContent, never parsed as markup), and the API key never goes into a URL:
// the WebSocket carries it as a Sec-WebSocket-Protocol value (see README, WebSocket).

const WS_PROTOCOL = "inbox-gateway.v1";
const WS_KEY_PROTOCOL = "inbox-gateway.bearer.";
const STORAGE_KEY = "igw-key";

const $ = (id) => document.getElementById(id);
let key = localStorage.getItem(STORAGE_KEY) || "";
let current = null, ws = null, lastSeq = null;
const conversations = new Map();

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
  if (!offered || offered === key) return;
  const shown = offered.slice(0, 10) + "…";
  if (confirm(`Use the API key ${shown} from the link you opened? Only accept a link you asked for.`)) {
    key = offered;
    localStorage.setItem(STORAGE_KEY, key);
  }
}

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    if (child === null || child === undefined || child === "") continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

async function api(path, options = {}) {
  const headers = { "Authorization": "Bearer " + key, "Content-Type": "application/json", ...(options.headers || {}) };
  const res = await fetch(path, { ...options, headers });
  if (!res.ok) throw new Error((await res.json()).error?.message || res.status);
  return res.json();
}

function renderList() {
  const items = [...conversations.values()].sort((a, b) => (b.last_activity_at || "").localeCompare(a.last_activity_at || ""));
  $("list").replaceChildren(...items.map((c) => {
    const name = el("strong", null, c.contact?.name || "contact " + c.contact?.id);
    const badge = c.unread_count ? el("span", "badge", c.unread_count) : null;
    const meta = el("div", "meta", `${c.channel_type ?? ""} · ${c.status ?? ""} · ${c.last_activity_at ?? ""}`);
    const row = el("div", c.id === current ? "conv active" : "conv", el("div", null, name, " ", badge), meta);
    row.addEventListener("click", () => open(c.id));
    return row;
  }));
}

function mediaLink(m) {
  const link = el("a", null, m.name || m.mime_type || "media");
  // Only the gateway's own media paths: never a javascript: or foreign URL from data.
  if (typeof m.url === "string" && m.url.startsWith("/api/v1/media/")) link.href = m.url;
  return link;
}

function renderItem(entry) {
  const it = entry.item;
  if (entry.kind === "call") {
    const details = [it.status, it.disposition || "", it.agent ? "agent " + it.agent : "",
      it.billsec != null ? it.billsec + " s" : ""].join(" ");
    return el("div", "item call", `📞 ${it.direction ?? ""} call ${it.from_number ?? ""} → ${it.to_number ?? ""}`,
      el("small", null, details));
  }
  const media = (it.media || []).flatMap((m) => [" ", mediaLink(m)]);
  const reactions = (it.reactions || []).map((r) => r.emoji).join(" ");
  const small = [it.sender?.name || "", `${it.created_at ?? ""} · ${it.status ?? ""}`, reactions,
    it.edited_at ? "· edited" : "", it.deleted_at ? "· deleted" : ""].join(" ");
  const direction = it.direction === "outbound" ? "outbound" : "inbound";
  return el("div", "item " + direction, it.text || "[" + it.type + "]", ...media, el("small", null, small));
}

async function open(id) {
  current = id;
  renderList();
  const page = await api(`/api/v1/conversations/${encodeURIComponent(id)}/timeline?limit=200`);
  $("timeline").replaceChildren(...page.items.map(renderItem));
  $("timeline").scrollTop = 1e9;
  $("reply").hidden = false;
}

function onEvent(frame) {
  lastSeq = frame.seq;
  if (frame.event.startsWith("conversation.")) conversations.set(frame.data.id, frame.data);
  renderList();
  if (frame.conversation_id === current && (frame.event.startsWith("message.") || frame.event.startsWith("call."))) open(current);
}

function status(text) { $("status").textContent = text; }

function connect() {
  key = $("key").value.trim();
  localStorage.setItem(STORAGE_KEY, key);
  if (ws) { ws.onclose = null; ws.close(); }
  api("/api/v1/conversations?limit=200").then((page) => {
    conversations.clear();
    for (const c of page.items) conversations.set(c.id, c);
    renderList();
  }).catch((e) => status("error: " + e.message));
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/ws`, [WS_PROTOCOL, WS_KEY_PROTOCOL + key]);
  ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", topics: ["account"], after: lastSeq }));
  ws.onmessage = (m) => {
    const frame = JSON.parse(m.data);
    if (frame.type === "subscribed") { status(`live · seq ${frame.seq}`); if (lastSeq === null) lastSeq = frame.seq; }
    else if (frame.type === "event") { onEvent(frame); status(`live · seq ${frame.seq}`); }
    else if (frame.type === "error") status("error: " + frame.message);
  };
  // Resume where we stopped: the server replays every event after lastSeq.
  ws.onclose = (e) => { status(`disconnected (${e.code}), retrying…`); setTimeout(connect, 2000); };
}

keyFromLink();
$("key").value = key;
window.addEventListener("hashchange", () => { keyFromLink(); $("key").value = key; });
$("connect").addEventListener("click", connect);
$("reply").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = JSON.stringify({ text: $("text").value });
  $("text").value = "";
  await api(`/api/v1/conversations/${encodeURIComponent(current)}/messages`, { method: "POST", body,
    headers: { "Idempotency-Key": crypto.randomUUID() } });
});
if (key) connect();
