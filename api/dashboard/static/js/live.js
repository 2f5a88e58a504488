// Live events from the sidecar's WebSocket relay.
//
// Where the relay is: the URL the sidecar gives in GET /api/v1/config (never the page's own
// query: a crafted link could otherwise send the token elsewhere), falling back to /ws on the
// page's own origin (the sidecar serves both). A candidate that closes before its welcome
// message is skipped. Reconnects carry the newest event id seen as last_event_id, so the
// relay replays what was missed while away.

const PING_EVERY_MS = 20_000;
const SILENCE_LIMIT_MS = 50_000;
const MAX_BACKOFF_MS = 15_000;
const WELCOME_TIMEOUT_MS = 5_000;
const POLICY_VIOLATION = 1008;

/** WebSocket URLs to try, most preferred first: the configured relay, then the page origin. */
export function relayCandidates(configuredUrl, location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const sameOrigin = `${scheme}//${location.host}/ws`;
  if (!configuredUrl || configuredUrl === sameOrigin) return [sameOrigin];
  return [configuredUrl, sameOrigin];
}

/** Stream ids are "<ms>-<seq>"; compare them numerically. */
function newerId(a, b) {
  if (!a) return b;
  if (!b) return a;
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return bm > am || (bm === am && bs > as) ? b : a;
}

export class LiveFeed {
  /**
   * @param {{token: string, relayUrl: string | null, channels: string[],
   *          onEvent: (event: object) => void,
   *          onState: (state: "connecting"|"open"|"reconnecting", url?: string) => void,
   *          onAuthFailed: () => void}} options
   */
  constructor({ token, relayUrl, channels, onEvent, onState, onAuthFailed }) {
    this.token = token;
    this.channels = channels;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onAuthFailed = onAuthFailed;
    this.candidates = relayCandidates(relayUrl);
    this.index = 0;
    this.lastEventId = null;
    this.backoff = 1000;
    this.socket = null;
    this.stopped = false;
    this.timers = [];
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.clearTimers();
    if (this.socket) this.socket.close(1000, "logout");
    this.socket = null;
  }

  clearTimers() {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  url() {
    const url = new URL(this.candidates[this.index]);
    url.searchParams.set("channels", this.channels.join(","));
    url.searchParams.set("token", this.token);
    if (this.lastEventId) url.searchParams.set("last_event_id", this.lastEventId);
    return url.toString();
  }

  connect() {
    if (this.stopped) return;
    this.onState(this.lastEventId === null && this.index === 0 ? "connecting" : "reconnecting");
    let welcomed = false;
    let lastHeard = Date.now();
    let socket;
    try {
      socket = new WebSocket(this.url());
    } catch {
      // An address the page's Content-Security-Policy refuses: try the next one.
      this.index = (this.index + 1) % this.candidates.length;
      setTimeout(() => this.connect(), this.index === 0 ? this.backoff : 0);
      return;
    }
    this.socket = socket;
    // A relay that never answers (or an address the browser blocks without a close event)
    // must not leave the page connecting forever: give up on it and try the next.
    const welcomeTimer = setTimeout(() => {
      if (!welcomed) socket.close();
    }, WELCOME_TIMEOUT_MS);

    socket.addEventListener("message", (message) => {
      lastHeard = Date.now();
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // the relay only sends JSON; ignore anything else rather than break the page
      }
      if (event.type === "welcome") {
        welcomed = true;
        clearTimeout(welcomeTimer);
        this.backoff = 1000;
        this.onState("open", this.candidates[this.index]);
        return;
      }
      if (event.type === "pong" || event.type === "heartbeat" || event.type === "subscribed") return;
      if (event.id) this.lastEventId = newerId(this.lastEventId, event.id);
      if (event.channel) this.onEvent(event);
    });

    socket.addEventListener("open", () => {
      this.clearTimers();
      this.timers.push(
        setInterval(() => {
          if (Date.now() - lastHeard > SILENCE_LIMIT_MS) socket.close(4000, "silent");
          else if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
        }, PING_EVERY_MS),
      );
    });

    socket.addEventListener("close", (close) => {
      if (this.socket !== socket) return;
      this.clearTimers();
      this.socket = null;
      if (this.stopped) return;
      const lastCandidate = this.index === this.candidates.length - 1;
      if (close.code === POLICY_VIOLATION && lastCandidate) {
        // The page's own server refused the token: it was revoked or changed.
        this.onAuthFailed();
        return;
      }
      if (!welcomed && !lastCandidate) {
        this.index += 1; // this address does not answer as our relay; try the next at once
        this.connect();
        return;
      }
      if (!welcomed) this.index = 0; // every address failed: start over after a pause
      this.onState("reconnecting");
      const delay = this.backoff;
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      setTimeout(() => this.connect(), delay);
    });
  }
}
