// The live event stream: one WebSocket at a time, resumed with `after` = the last seq seen,
// a heartbeat that notices a dead connection, and no retrying with a key the gateway refused.

const WS_PROTOCOL = "inbox-gateway.v1";
const WS_KEY_PROTOCOL = "inbox-gateway.bearer.";
const HEARTBEAT_MS = 15000;
const PONG_TIMEOUT_MS = 5000;
const BACKOFF_MS = [500, 1000, 2000, 5000, 10000, 15000];

export class Stream {
  // onEvent(frame), onStatus(state, text), onResumed() — state is live|connecting|offline|invalid-key
  constructor({ onEvent, onStatus, onSubscribed }) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onSubscribed = onSubscribed || (() => {});
    this.ws = null;
    this.key = "";
    this.lastSeq = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.pongTimer = null;
    this.stopped = true;
    window.addEventListener("offline", () => { if (!this.stopped) this._dead("offline: the browser has no network"); });
    window.addEventListener("online", () => { if (!this.stopped && this.ws === null) this._open(); });
  }

  start(key) {
    if (key !== this.key) this.lastSeq = null; // another account's seqs mean nothing here
    this.key = key;
    this.stopped = false;
    this.attempt = 0;
    this._open();
  }

  stop() {
    this.stopped = true;
    this._drop();
  }

  // Detach the old socket before closing it, so its close can never schedule a reconnect.
  _drop() {
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.pongTimer);
    const old = this.ws;
    this.ws = null;
    if (old) {
      old.onopen = old.onmessage = old.onclose = old.onerror = null;
      try { old.close(1000); } catch { /* already closing */ }
    }
  }

  _open() {
    this._drop();
    this.onStatus("connecting", "connecting…");
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/ws`, [WS_PROTOCOL, WS_KEY_PROTOCOL + this.key]);
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "subscribe", topics: ["account"], after: this.lastSeq }));
      this.heartbeatTimer = setInterval(() => this._ping(), HEARTBEAT_MS);
    };
    ws.onmessage = (m) => {
      let frame;
      try { frame = JSON.parse(m.data); } catch { return; }
      clearTimeout(this.pongTimer); // any frame proves the connection is alive
      if (frame.type === "subscribed") {
        this.attempt = 0;
        const resumed = this.lastSeq !== null;
        if (this.lastSeq === null) this.lastSeq = frame.seq;
        this.onStatus("live", "live");
        this.onSubscribed(resumed);
      } else if (frame.type === "event") {
        if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // already seen
        this.lastSeq = frame.seq;
        this.onEvent(frame);
      } else if (frame.type === "error") {
        this.onStatus("live", "live · " + (frame.message || frame.code));
      }
    };
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      if (e.code === 4401) {
        this.stopped = true;
        this._drop();
        this.onStatus("invalid-key", "invalid key");
        return;
      }
      this._dead(`offline (${e.code || "no answer"})`);
    };
  }

  _ping() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: "ping" }));
    clearTimeout(this.pongTimer);
    this.pongTimer = setTimeout(() => { if (ws === this.ws) this._dead("offline (no answer to ping)"); }, PONG_TIMEOUT_MS);
  }

  _dead(reason) {
    this._drop();
    if (this.stopped) return;
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.onStatus("offline", `${reason} · retrying in ${Math.round(delay / 1000) || 1} s`);
    this.retryTimer = setTimeout(() => this._open(), delay);
  }
}
