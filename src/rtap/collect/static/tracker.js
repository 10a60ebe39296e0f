/* rtap browser tracker (no third-party code, no build step; docs/tracker.md). Store: the queue the site's tabs
 * share. Outbox: sends it in batches, retries. An event leaves the Store after a 2xx or a 4xx that says never.
 */
(() => {
  "use strict";
  if (window.rtap && window.rtap.version) return; // loaded twice: the first one stays in charge

  // The retry policy, in one place. 2xx: sent. 408, 429, 5xx, no answer: again after max(Retry-After, full
  // jitter in [0, min(CAP, BASE * 2^(failures-1))]). 413 on a batch: each half in turn. Other 4xx (400, 401,
  // 403, 413 on one event): never; dropped, counted.
  const RETRY_BASE_MS = 1000;
  const RETRY_CAP_MS = 30000;
  const MAX_BATCH = 500; // the collector's default RTAP_COLLECT_MAX_BATCH_EVENTS
  const SENT = "sent", REFUSED = "refused", RETRY = "retry";
  const fate = (status) => {
    if (status >= 200 && status < 300) return SENT;
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) return REFUSED;
    return RETRY;
  };
  const backoffMs = (failures) => Math.random() * Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (failures - 1));

  const DEFAULTS = { batchSize: 20, flushInterval: 3000, maxQueue: 500 };
  const SESSION_IDLE_MS = 30 * 60 * 1000;
  const BEACON_MAX = 50; // per hide; the browser's 64 KB quota may stop it sooner
  const KEY = "rtap_"; // every cookie and localStorage key

  const now = () => new Date().toISOString(); // created_at and sent_at: one clock, the device's
  const script = document.currentScript;

  const uuid = () => {
    if (crypto.randomUUID) return crypto.randomUUID(); // secure contexts only
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };

  // localStorage may throw (private mode, quota, disabled): a value that cannot be stored stays in memory
  // for this page, and is read from there first (status().persistent says so).
  const memory = {};
  let persistent = true;
  const load = (key) => {
    try {
      const text = key in memory ? memory[key] : localStorage.getItem(KEY + key);
      return text == null ? null : JSON.parse(text);
    } catch (e) {
      return null; // not JSON: as if absent
    }
  };
  const save = (key, value) => {
    const text = JSON.stringify(value);
    try {
      localStorage.setItem(KEY + key, text);
      delete memory[key];
    } catch (e) {
      persistent = false;
      memory[key] = text;
    }
  };
  const forget = (key) => {
    delete memory[key];
    try {
      localStorage.removeItem(KEY + key);
    } catch (e) {
      /* no storage: nothing there */
    }
  };
  const cookie = (name) => {
    const found = document.cookie.split("; ").find((c) => c.startsWith(KEY + name + "="));
    return found ? decodeURIComponent(found.slice(KEY.length + name.length + 1)) : null;
  };
  const setCookie = (name, value, maxAge) => {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${KEY}${name}=${encodeURIComponent(value)}; Max-Age=${maxAge}; Path=/; SameSite=Lax${secure}`;
  };

  const counters = () => Object.assign({ dropped: 0, refused: 0 }, load("counters"));
  const count = (name, n) => {
    const c = counters();
    c[name] += n;
    save("counters", c);
  };

  /** Unsent events, read and written whole on each change so that the site's tabs share one queue. */
  class Store {
    constructor(name, max) {
      this.name = name;
      this.max = max;
    }
    all() {
      const list = load(this.name);
      return Array.isArray(list) ? list : [];
    }
    push(event) {
      const list = this.all();
      const over = list.push(event) - this.max;
      if (over > 0) {
        list.splice(0, over); // full: the oldest go, counted
        count("dropped", over);
      }
      save(this.name, list);
      return list.length;
    }
    remove(ids) {
      const list = this.all();
      const kept = list.filter((e) => !ids.has(e.event_id));
      if (kept.length < list.length) save(this.name, kept); // opted out meanwhile: stays empty, not rewritten
    }
    clear() {
      forget(this.name);
    }
  }

  /** Sends the Store's events in batches (on size or interval), per the policy above. */
  class Outbox {
    constructor(config, store) {
      this.config = config;
      this.store = store;
      this.failures = 0;
      this.timer = 0;
      this.retrying = false; // the timer is a backoff: new events wait for it
      this.busy = false;
      this.pieces = []; // after a 413, the halves' sizes
    }
    add(event) {
      const queued = this.store.push(event);
      if (this.retrying) return;
      if (queued >= this.config.batchSize) this.flush();
      else if (!this.timer) this.schedule(this.config.flushInterval, false);
    }
    schedule(ms, retrying) {
      clearTimeout(this.timer);
      this.retrying = retrying;
      this.timer = setTimeout(() => this.flush(), ms);
    }
    /** Sends now, whatever timer is pending. */
    async flush() {
      if (this.busy || !allowed()) return;
      clearTimeout(this.timer);
      this.timer = 0;
      this.retrying = false;
      const batch = this.store.all().slice(0, this.pieces[0] || this.config.batchSize);
      if (!batch.length) return (this.pieces = []);
      this.busy = true;
      let status = 0;
      let retryAfterMs = 0;
      try {
        const body = JSON.stringify({ write_key: this.config.writeKey, sent_at: now(), events: batch });
        // A string body goes as text/plain: a "simple" request, no CORS preflight.
        const response = await fetch(this.config.endpoint + "/v1/batch", { method: "POST", body, credentials: "omit" });
        status = response.status;
        retryAfterMs = 1000 * (parseFloat(response.headers.get("Retry-After")) || 0);
      } catch (e) {
        /* no answer (down, offline, blocked): status 0 */
      }
      this.busy = false;
      const outcome = fate(status);
      if (outcome === RETRY) {
        this.failures += 1;
        return this.schedule(Math.max(retryAfterMs, backoffMs(this.failures)), true);
      }
      this.failures = 0;
      this.pieces.shift();
      const half = Math.ceil(batch.length / 2);
      if (status === 413 && batch.length > 1) this.pieces.unshift(half, batch.length - half);
      else {
        this.store.remove(new Set(batch.map((e) => e.event_id)));
        if (outcome === REFUSED) {
          count("refused", batch.length);
          console.warn(`rtap: the collector refused ${batch.length} events with HTTP ${status}; they are dropped`);
        }
      }
      if (this.store.all().length) this.flush();
    }
    /** The page is going: the browser sends these after it. No answer comes, so they stay for the batch path. */
    beacon() {
      if (!navigator.sendBeacon || !allowed()) return;
      for (const event of this.store.all().slice(0, BEACON_MAX)) {
        const body = JSON.stringify(Object.assign({ write_key: this.config.writeKey, sent_at: now() }, event));
        if (!navigator.sendBeacon(this.config.endpoint + "/v1/event", body)) break; // quota full
      }
    }
  }

  let outbox = null;
  let lastUrl = location.href;
  let referrer = document.referrer;

  const doNotTrack = () =>
    navigator.doNotTrack === "1" || window.doNotTrack === "1" || navigator.globalPrivacyControl === true;
  const optedOut = () => load("optout") === true;
  const allowed = () => !doNotTrack() && !optedOut();

  /** The anonymous id: a first-party cookie, mirrored in localStorage so either survives alone. */
  const anonymousId = () => {
    let id = cookie("aid") || load("aid");
    if (!id) id = uuid();
    if (cookie("aid") !== id) setCookie("aid", id, 365 * 24 * 3600);
    if (load("aid") !== id) save("aid", id);
    return id;
  };

  /** A new session after 30 minutes without an event; in localStorage, for all tabs. */
  const sessionId = () => {
    const t = Date.now();
    let session = load("session");
    if (!session || !session.id || Math.abs(t - session.t) > SESSION_IDLE_MS) session = { id: uuid() };
    session.t = t;
    save("session", session);
    return session.id;
  };

  const device = () => (innerWidth < 768 ? "mobile" : innerWidth < 1024 ? "tablet" : "desktop");

  // data-rtap-* attributes give strings: the contract wants a number and an integer.
  const normalise = (props) => {
    const p = Object.assign({}, props);
    if (p.price != null && p.price !== "") p.price = Number(p.price);
    if (p.quantity != null && p.quantity !== "") p.quantity = parseInt(p.quantity, 10);
    return p;
  };

  const track = (type, props) => {
    if (!outbox) return console.warn(`rtap: ${type} before rtap.init(), not recorded`);
    if (!allowed()) return;
    const base = { url: location.href, referrer: referrer || null, title: document.title };
    const event = Object.assign(base, normalise(props), {
      event_id: uuid(),
      type,
      created_at: now(),
      anonymous_id: anonymousId(),
      session_id: sessionId(),
      device: device(),
    });
    outbox.add(event);
    return event.event_id;
  };

  const page = (props) => {
    lastUrl = location.href;
    return track("page_view", props);
  };

  const navigated = () => {
    if (location.href === lastUrl) return; // replaceState without a new address is not a page view
    referrer = lastUrl;
    page();
  };

  const clicked = (e) => {
    const el = e.target.closest && e.target.closest("[data-rtap-event]");
    if (!el) return;
    const props = {};
    for (const [name, value] of Object.entries(el.dataset)) {
      // data-rtap-product-id is dataset.rtapProductId: product_id.
      if (name.startsWith("rtap") && name !== "rtapEvent") {
        props[name.slice(4).replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase())] = value;
      }
    }
    track(el.dataset.rtapEvent, props);
  };

  let beaconed = false; // a closing tab gets visibilitychange and pagehide: beacon once
  const hidden = () => {
    if (beaconed || !outbox) return;
    beaconed = true;
    outbox.beacon();
  };

  const init = (options) => {
    if (outbox) return console.warn("rtap: init() called twice; the first configuration stays");
    const o = Object.assign({}, options);
    if (!o.writeKey) throw new Error("rtap.init: writeKey is required (docs/tracker.md)");
    const origin = script && script.src ? new URL(script.src).origin : location.origin;
    // Numbers may be data-* strings; absent or unreadable: the default.
    const number = (name, least) => Math.max(least, isNaN(parseFloat(o[name])) ? DEFAULTS[name] : Number(o[name]));
    const config = {
      writeKey: String(o.writeKey),
      endpoint: String(o.endpoint || origin).replace(/\/+$/, ""),
      batchSize: Math.min(MAX_BATCH, number("batchSize", 1)),
      flushInterval: number("flushInterval", 0),
      maxQueue: number("maxQueue", 1),
    };
    outbox = new Outbox(config, new Store("queue_" + config.writeKey, config.maxQueue));
    for (const name of ["pushState", "replaceState"]) {
      const original = history[name];
      history[name] = function () {
        const result = original.apply(this, arguments);
        navigated();
        return result;
      };
    }
    addEventListener("popstate", navigated);
    addEventListener("click", clicked, true); // capture: before a handler takes the page away
    addEventListener("pagehide", hidden);
    addEventListener("pageshow", () => (beaconed = false));
    addEventListener("online", () => outbox.flush());
    document.addEventListener("visibilitychange", () =>
      document.visibilityState === "hidden" ? hidden() : (beaconed = false)
    );
    if (o.autoPage !== false) page();
    outbox.flush(); // what earlier pages left
  };

  const helpers = {
    productView: "product_view",
    addToCart: "add_to_cart",
    removeFromCart: "remove_from_cart",
    checkout: "checkout",
    purchase: "purchase",
  };
  const rtap = {
    version: "1",
    init,
    page,
    track,
    search: (query, props) => track("search", typeof query === "string" ? Object.assign({ query }, props) : query),
    flush: () => outbox && outbox.flush(),
    /** Nothing sent or stored from now on, in later visits too: the queue and ids are erased. */
    optOut: () => {
      if (outbox) outbox.store.clear();
      ["aid", "session", "counters"].forEach(forget);
      setCookie("aid", "", 0);
      save("optout", true);
    },
    optIn: () => forget("optout"),
    /** What the tracker holds, for a site's checks and for tests. */
    status: () =>
      Object.assign(counters(), {
        queued: outbox ? outbox.store.all().length : 0,
        failures: outbox ? outbox.failures : 0,
        persistent,
        tracking: allowed(),
      }),
  };
  for (const [name, type] of Object.entries(helpers)) rtap[name] = (props) => track(type, props);
  window.rtap = rtap;

  const data = script ? script.dataset : {};
  if (data.writeKey) init(Object.assign({}, data, { autoPage: data.autoPage !== "false" }));
})();
