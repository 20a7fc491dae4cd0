// The native stream of one site (/api/v1/sites/{site}/stream): reconnects after a drop
// with back-off and resumes after the last event it had (`since`), so no line is lost
// or shown twice.

const FIRST_PAUSE_MS = 1000;
const LONGEST_PAUSE_MS = 10000;

export class Stream {
  // onFrame(frame) for each frame; onState("connecting" | "live" | "reconnecting" | "offline").
  constructor(onFrame, onState) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.socket = null;
    this.site = null;
    this.position = 0;
    this.failures = 0;
    this.timer = null;
    window.addEventListener("online", () => this.site && this.reconnectNow());
    window.addEventListener("offline", () => this.site && this.onState("offline"));
  }

  // Follows `site` from event `since` on (everything after it is replayed first).
  open(site, since, token) {
    this.close();
    this.site = site;
    this.position = since;
    this.token = token;
    this.failures = 0;
    this.connect("connecting");
  }

  close() {
    clearTimeout(this.timer);
    this.site = null;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.onclose = socket.onerror = socket.onmessage = socket.onopen = null;
      socket.close();
    }
  }

  reconnectNow() {
    clearTimeout(this.timer);
    if (!this.socket) this.connect("reconnecting");
  }

  connect(state) {
    if (!navigator.onLine) {
      this.onState("offline");
      return;
    }
    this.onState(state);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams({ since: String(this.position) });
    if (this.token) query.set("token", this.token);
    const path = `/api/v1/sites/${encodeURIComponent(this.site)}/stream`;
    const socket = new WebSocket(`${scheme}//${location.host}${path}?${query}`);
    this.socket = socket;
    socket.onopen = () => {
      this.failures = 0;
      this.onState("live");
    };
    socket.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.id !== undefined) {
        if (frame.id <= this.position) return; // given already
        this.position = frame.id;
      }
      this.onFrame(frame);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.failures += 1;
      const step = Math.min(LONGEST_PAUSE_MS, FIRST_PAUSE_MS * 2 ** (this.failures - 1));
      // Jitter: many consoles reconnecting after a restart do not arrive together.
      const pause = step / 2 + Math.random() * (step / 2);
      this.onState(navigator.onLine ? "reconnecting" : "offline");
      this.timer = setTimeout(() => this.connect("reconnecting"), pause);
    };
  }
}
