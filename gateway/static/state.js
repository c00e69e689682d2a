// What the page knows: conversations by id, the selected tab and search, the open conversation.
// Pure data and predicates; views read it, inbox.js changes it.

const STORAGE = { key: "igw-key", agent: "igw-agent", extension: "igw-extension" };

export const state = {
  key: localStorage.getItem(STORAGE.key) || "",
  agent: localStorage.getItem(STORAGE.agent) || "",
  extension: localStorage.getItem(STORAGE.extension) || "",
  tab: "open",
  q: "",
  searchIds: null, // ids the server matched for `q`, or null without a search
  conversations: new Map(),
  previews: new Map(), // conversation id -> newest timeline entry
  loaded: false,
  current: null,
  contact: null,
  timeline: [], // [{kind, item}] of the open conversation, oldest first
  channels: new Map(),
};

export function remember(name, value) {
  state[name] = value;
  localStorage.setItem(STORAGE[name], value);
}

export function inTab(c, tab, agent) {
  switch (tab) {
    case "open": return c.status !== "resolved";
    case "mine": return c.status !== "resolved" && !!agent && c.assignee === agent;
    case "unassigned": return c.status !== "resolved" && !c.assignee;
    case "resolved": return c.status === "resolved";
    default: return true;
  }
}

// The server query for a tab; "unassigned" has no server filter and is narrowed here.
export function tabQuery(tab, agent) {
  const params = new URLSearchParams({ limit: "200" });
  if (tab === "resolved") params.set("status", "resolved");
  else params.set("status", "open,pending,snoozed");
  if (tab === "mine") params.set("assignee", agent || "\u2400"); // no name: matches nobody
  return params;
}

export function visibleConversations() {
  return [...state.conversations.values()]
    .filter((c) => inTab(c, state.tab, state.agent))
    .filter((c) => state.searchIds === null || state.searchIds.has(c.id))
    .sort((a, b) => (Date.parse(b.last_activity_at) || 0) - (Date.parse(a.last_activity_at) || 0) || b.id - a.id);
}

export function unreadTotal() {
  let n = 0;
  for (const c of state.conversations.values()) n += c.unread_count || 0;
  return n;
}

export function entryKey(entry) {
  return `${entry.kind}:${entry.item.id}`;
}

export function entryTime(entry) {
  return entry.kind === "call" ? entry.item.started_at || entry.item.created_at : entry.item.created_at;
}

// A message's status only moves forward; a REST answer can arrive after the events that
// already moved it on (the 202 of a send lands after its "sent" event), and must not undo them.
const PROGRESS = { received: 0, pending: 0, sent: 1, delivered: 2, read: 3, played: 4, failed: 5 };

export function isStale(entry, known) {
  if (entry.kind === "call") return (Date.parse(entry.item.updated_at) || 0) < (Date.parse(known.item.updated_at) || 0);
  return (PROGRESS[entry.item.status] ?? 0) < (PROGRESS[known.item.status] ?? 0);
}

// Insert or replace one message or call; answers true when it was new.
export function upsertEntry(entry) {
  const key = entryKey(entry);
  const at = state.timeline.findIndex((e) => entryKey(e) === key);
  if (at >= 0) {
    if (!isStale(entry, state.timeline[at])) state.timeline[at] = entry;
    return false;
  }
  state.timeline.push(entry);
  state.timeline.sort((a, b) => (Date.parse(entryTime(a)) || 0) - (Date.parse(entryTime(b)) || 0));
  return true;
}

// The same rule for conversations: an older copy (a slow PATCH answer) never replaces a newer one.
export function putConversation(c) {
  const known = state.conversations.get(c.id);
  if (known && (Date.parse(c.updated_at) || 0) < (Date.parse(known.updated_at) || 0)) return known;
  state.conversations.set(c.id, c);
  return c;
}
