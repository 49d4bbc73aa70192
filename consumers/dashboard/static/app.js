/* kracked dashboard page: one WebSocket to the server, state per open symbol, drawing on demand.
 * Messages only update plain data and mark what is dirty; drawing happens at most once per frame,
 * so a burst of updates costs one redraw. Every collection is bounded (limits come from the server),
 * so the page's memory stays flat however long it stays open. Values shown are the exact decimal
 * strings received; floats exist only inside charts.js to place pixels. */
"use strict";

(function () {
  const Charts = window.KrackedCharts;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const STATUSES = ["dry-run", "submitted", "acknowledged", "rejected", "failed"];
  const STALE_US = 10e6;

  const S = {
    ws: null, connected: false, retryMs: 500,
    symbols: [], open: [], touched: false, interval: null,
    views: new Map(),
    limits: { bars_per_interval: 500, spread_points: 600, markers: 300 },
    clockOffsetUs: 0, messages: 0, health: null, orders: null,
    dirtyGlobal: new Set(), renderPending: false,
  };

  const nowUs = () => Date.now() * 1000 + S.clockOffsetUs;

  // ---- URL state ------------------------------------------------------------------------------
  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const syms = (params.get("s") || "").split(",").filter(Boolean);
    if (syms.length) { S.open = syms; S.touched = true; }
    const i = parseInt(params.get("i") || "", 10);
    if (i > 0) S.interval = i;
  }
  function writeHash() {
    const params = new URLSearchParams();
    if (S.open.length) params.set("s", S.open.join(","));
    if (S.interval) params.set("i", String(S.interval));
    history.replaceState(null, "", "#" + params.toString().replace(/%2F/g, "/").replace(/%2C/g, ","));
  }

  // ---- connection -----------------------------------------------------------------------------
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/ws");
    S.ws = ws;
    setConn("connecting…", "warn");
    ws.onopen = () => {
      S.connected = true; S.retryMs = 500;
      setConn("live", "ok");
      // the server sends full snapshots of what we open: start from clean views
      for (const sym of S.open) resetView(sym);
      sendOpen();
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      S.messages++;
      if (typeof msg.now === "number") S.clockOffsetUs = msg.now - Date.now() * 1000;
      if (msg.type === "global") onGlobal(msg);
      else if (msg.type === "symbol") onSymbol(msg);
      scheduleRender();
    };
    ws.onclose = () => {
      S.connected = false;
      setConn("disconnected — retrying", "bad");
      setTimeout(connect, S.retryMs);
      S.retryMs = Math.min(5000, S.retryMs * 2);
    };
  }
  function sendOpen() {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify({ op: "open", symbols: S.open }));
  }
  function setConn(text, cls) {
    const el = $("#conn");
    el.textContent = text;
    el.className = "pill " + cls;
  }

  // ---- messages -------------------------------------------------------------------------------
  function onGlobal(msg) {
    if (msg.limits) S.limits = Object.assign(S.limits, msg.limits);
    if (msg.symbols) {
      S.symbols = msg.symbols;
      if (!S.touched && !S.open.length && S.symbols.length) {
        S.open = S.symbols.slice(0, 2);
        for (const sym of S.open) resetView(sym);
        sendOpen();
        writeHash();
      }
      S.dirtyGlobal.add("picker");
    }
    if (msg.health) { S.health = msg.health; S.dirtyGlobal.add("health"); }
    if (msg.orders) { S.orders = msg.orders; S.dirtyGlobal.add("orders"); }
  }

  function newView(symbol) {
    return {
      symbol, book: null, trade: null, health: {},
      bars: new Map(), spread: new Map(), markers: new Map(),
      dirty: new Set(["book", "bars", "spread", "trade", "health"]), el: null,
    };
  }

  /** A clean view for `sym` that keeps its panel element (a snapshot replaces everything else). */
  function resetView(sym) {
    const old = S.views.get(sym);
    const v = newView(sym);
    v.el = old ? old.el : null;
    S.views.set(sym, v);
    return v;
  }

  function onSymbol(msg) {
    if (!S.open.includes(msg.symbol)) return;
    let v = S.views.get(msg.symbol);
    if (!v || msg.full) v = resetView(msg.symbol);
    if ("book" in msg) { v.book = msg.book; v.dirty.add("book"); }
    if ("trade" in msg) { v.trade = msg.trade; v.dirty.add("trade"); }
    if ("health" in msg) { v.health = msg.health || {}; v.dirty.add("health"); }
    if (msg.bars) { for (const b of msg.bars) upsert(v.bars, b, S.limits.bars_per_interval); v.dirty.add("bars"); }
    if (msg.spread) { for (const p of msg.spread) upsert(v.spread, p, S.limits.spread_points); v.dirty.add("spread"); }
    if (msg.markers) {
      for (const m of msg.markers) { v.markers.delete(m.id); v.markers.set(m.id, m); }
      while (v.markers.size > S.limits.markers) v.markers.delete(v.markers.keys().next().value);
      v.dirty.add("bars");
    }
    if (msg.full) v.dirty = new Set(["book", "bars", "spread", "trade", "health"]);
  }

  /** Insert or replace by start in the interval's sorted array, keeping the newest `limit`. */
  function upsert(byInterval, item, limit) {
    let arr = byInterval.get(item.i);
    if (!arr) { arr = []; byInterval.set(item.i, arr); S.dirtyGlobal.add("intervals"); }
    const n = arr.length;
    if (!n || arr[n - 1].start < item.start) arr.push(item);
    else if (arr[n - 1].start === item.start) arr[n - 1] = item;
    else {
      let lo = 0, hi = n;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid].start < item.start) lo = mid + 1; else hi = mid; }
      if (lo < n && arr[lo].start === item.start) arr[lo] = item; else arr.splice(lo, 0, item);
    }
    if (arr.length > limit) arr.splice(0, arr.length - limit);
  }

  // ---- rendering ------------------------------------------------------------------------------
  function scheduleRender() {
    if (S.renderPending) return;
    S.renderPending = true;
    // a frame when visible; the timer covers hidden tabs, where frames pause
    requestAnimationFrame(render);
    setTimeout(render, 250);
  }

  function render() {
    if (!S.renderPending) return;
    S.renderPending = false;
    if (S.dirtyGlobal.has("picker")) renderPicker();
    if (S.dirtyGlobal.has("intervals")) renderIntervals();
    if (S.dirtyGlobal.has("health")) renderHealth();
    if (S.dirtyGlobal.has("orders")) renderOrders();
    S.dirtyGlobal.clear();
    syncPanels();
    for (const sym of S.open) {
      const v = S.views.get(sym);
      if (v && v.dirty.size) renderPanel(v);
    }
  }

  function renderPicker() {
    const box = $("#picker");
    const filter = $("#filter").value.trim().toUpperCase();
    const frag = document.createDocumentFragment();
    for (const sym of S.symbols) {
      if (filter && !sym.toUpperCase().includes(filter) && !S.open.includes(sym)) continue;
      const label = document.createElement("label");
      label.className = S.open.includes(sym) ? "on" : "";
      label.dataset.symbol = sym;
      const cb = document.createElement("input");
      cb.type = "checkbox"; cb.checked = S.open.includes(sym);
      cb.addEventListener("change", () => toggle(sym, cb.checked));
      label.append(cb, document.createTextNode(sym));
      frag.append(label);
    }
    box.replaceChildren(frag);
  }

  function toggle(sym, on) {
    S.touched = true;
    if (on && !S.open.includes(sym)) { S.open.push(sym); S.views.set(sym, newView(sym)); }
    if (!on) { S.open = S.open.filter((s) => s !== sym); S.views.delete(sym); }
    sendOpen(); writeHash();
    S.dirtyGlobal.add("picker"); S.dirtyGlobal.add("intervals");
    scheduleRender();
  }

  function availableIntervals() {
    const set = new Set();
    for (const sym of S.open) { const v = S.views.get(sym); if (v) for (const i of v.bars.keys()) set.add(i); }
    return [...set].sort((a, b) => a - b);
  }

  function renderIntervals() {
    const list = availableIntervals();
    if (list.length && !list.includes(S.interval)) S.interval = list[0];
    const box = $("#intervals");
    box.replaceChildren(...list.map((i) => {
      const b = document.createElement("button");
      b.textContent = i % 3600 === 0 ? i / 3600 + "h" : i % 60 === 0 ? i / 60 + "m" : i + "s";
      b.dataset.interval = String(i);
      b.className = i === S.interval ? "on" : "";
      b.addEventListener("click", () => {
        S.interval = i; writeHash(); S.dirtyGlobal.add("intervals");
        for (const v of S.views.values()) { v.dirty.add("bars"); v.dirty.add("spread"); }
        scheduleRender();
      });
      return b;
    }));
  }

  function syncPanels() {
    const main = $("#panels");
    for (const el of [...main.querySelectorAll(".panel")]) {
      if (!S.open.includes(el.dataset.symbol)) el.remove();
    }
    $("#empty").classList.toggle("hidden", S.open.length > 0);
    for (const sym of S.open) {
      const v = S.views.get(sym);
      if (!v) continue;
      if (!v.el || !v.el.isConnected) {
        const el = $("#panel-tpl").content.firstElementChild.cloneNode(true);
        el.dataset.symbol = sym;
        $(".sym", el).textContent = sym;
        $(".close", el).addEventListener("click", () => toggle(sym, false));
        main.append(el);
        v.el = el;
        v.dirty = new Set(["book", "bars", "spread", "trade", "health"]);
      }
    }
  }

  function renderPanel(v) {
    const el = v.el;
    if (!el) return;
    if (v.dirty.has("book")) renderBook(v);
    if (v.dirty.has("trade")) renderTrade(v);
    if (v.dirty.has("bars")) {
      const bars = v.bars.get(S.interval) || [];
      Charts.drawCandles($("canvas.price", el), bars, [...v.markers.values()], S.interval);
    }
    if (v.dirty.has("spread")) renderSpread(v);
    if (v.dirty.has("health")) {
      const h = v.health || {};
      const hot = (n) => '<b class="' + (n ? "hot" : "") + '">' + (n || 0) + "</b>";
      $(".shealth", el).innerHTML = "this symbol: gaps " + hot(h.gaps) + " · checksum resyncs " + hot(h.resyncs) +
        " · reconnects " + hot(h.reconnects) + " · continuity events " + (h.events || 0);
    }
    v.dirty.clear();
  }

  function renderBook(v) {
    const el = v.el, book = v.book;
    const badge = $(".verdict", el), warn = $(".warn", el), ladder = $("table.ladder", el);
    Charts.drawDepth($("canvas.depth", el), book);
    if (!book) { badge.textContent = "NO BOOK"; badge.className = "badge verdict unverified"; return; }
    const ok = book.verdict === "verified";
    badge.textContent = ok ? "VERIFIED ✓" : "UNVERIFIED";
    badge.className = "badge verdict " + (ok ? "verified" : "unverified");
    badge.title = book.verdict_reason + " · checksum " + book.checksum + " · " + book.source;
    el.classList.toggle("untrusted", !ok);
    ladder.classList.toggle("untrusted", !ok);
    warn.classList.toggle("hidden", ok);
    if (!ok) warn.textContent = "Book unverified (" + book.verdict_reason + "): the levels below are not good data.";
    $(".epoch", el).textContent = "epoch " + book.epoch + " · " + book.kind + " · crc " + book.checksum;
    $(".book-spread", el).textContent = book.spread != null ? "· book spread " + book.spread : "";
    const rows = Math.max(book.bids.length, book.asks.length);
    const tbody = ladder.tBodies[0];
    while (tbody.rows.length < rows) {
      const tr = tbody.insertRow();
      for (const cls of ["bid-cum cum", "bid-qty", "bid-px", "ask-px", "ask-qty", "ask-cum cum"]) tr.insertCell().className = cls;
    }
    while (tbody.rows.length > rows) tbody.deleteRow(-1);
    for (let i = 0; i < rows; i++) {
      const c = tbody.rows[i].cells, b = book.bids[i], a = book.asks[i];
      c[0].textContent = b ? b[2] : ""; c[1].textContent = b ? b[1] : ""; c[2].textContent = b ? b[0] : "";
      c[3].textContent = a ? a[0] : ""; c[4].textContent = a ? a[1] : ""; c[5].textContent = a ? a[2] : "";
    }
    renderAge(v);
  }

  function renderAge(v) {
    if (!v.el) return;
    const el = $(".age", v.el), book = v.book;
    if (!book) { el.textContent = "age –"; return; }
    const ts = book.ts_recv || book.ts;
    const age = Math.max(0, nowUs() - ts);
    const s = age / 1e6;
    el.textContent = "age " + (s < 10 ? s.toFixed(1) + " s" : s < 120 ? Math.round(s) + " s" : Math.round(s / 60) + " min");
    el.className = "badge age " + (age > STALE_US ? "stale" : "muted");
    el.title = "since the connector received the last applied book record (" + Charts.fmtTime(ts, true) + " UTC)";
  }

  function renderTrade(v) {
    const t = v.trade;
    $(".last-price", v.el).textContent = t ? t.price : "–";
    $(".last-meta", v.el).textContent = t
      ? [t.qty ? t.qty : null, t.side, t.trade_id != null ? "#" + t.trade_id : null, t.ts ? Charts.fmtTime(t.ts, true) : null,
         t.from === "bar" ? "(bar close)" : null].filter(Boolean).join(" ")
      : "";
  }

  function renderSpread(v) {
    let interval = S.interval;
    if (!v.spread.has(interval)) interval = [...v.spread.keys()].sort((a, b) => a - b)[0];
    const pts = v.spread.get(interval) || [];
    Charts.drawSpread($("canvas.spread", v.el), pts, interval);
    const last = pts[pts.length - 1];
    $(".spread-px", v.el).textContent = last ? last.close : "–";
    $(".spread-bps", v.el).textContent = last ? last.close_bps : "–";
    $(".spread-meta", v.el).textContent = last
      ? "(" + interval + " s, twa " + last.twa + " / " + last.twa_bps + " bps, min " + last.min + ", max " + last.max + ", from " + last.source + ")"
      : "";
  }

  function cell(tr, text, cls) {
    const td = tr.insertCell();
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    return td;
  }

  function renderHealth() {
    const h = S.health;
    if (!h) return;
    const conns = Object.entries(h.connections || {});
    const box = $("#h-connections");
    if (conns.length) {
      box.replaceChildren(...conns.map(([key, c]) => {
        const s = document.createElement("span");
        s.className = "pill " + (c.state === "up" ? "ok" : c.state === "stale" ? "warn" : "bad");
        s.textContent = key + ": " + c.state;
        s.title = c.event + " at " + (c.since ? Charts.fmtTime(c.since, true) : "?") + " UTC";
        return s;
      }));
    }
    const hot = (id, n) => { const b = $(id); b.textContent = String(n); b.className = n ? "hot" : ""; };
    hot("#h-reconnects", h.reconnects); hot("#h-gaps", h.gaps); hot("#h-resyncs", h.resyncs);
    const c = h.consumer || {};
    const cons = $("#h-consumer");
    cons.textContent = c.state + (c.detail ? " (" + c.detail + ")" : "");
    cons.className = c.state === "up" ? "" : "hot";
    $("#h-records").textContent = String(c.records || 0);
    hot("#h-undecodable", c.undecodable || 0);
    const lag = $("#h-lag");
    lag.replaceChildren(...Object.entries(h.lag || {}).map(([topic, n]) => {
      const s = document.createElement("span");
      s.className = "pill " + (n > 1000 ? "warn" : "ok");
      s.dataset.topic = topic;
      s.textContent = topic.replace(/^kracked\.|^kraken\./, "") + " " + n;
      return s;
    }));
    const tbody = $("#h-events").tBodies[0];
    const frag = document.createDocumentFragment();
    for (const e of h.recent || []) {
      const tr = document.createElement("tr");
      tr.className = e.resync ? "resync" : e.gap ? "gap" : "";
      tr.dataset.event = e.event;
      cell(tr, e.ts ? Charts.fmtTime(e.ts, true) : ""); cell(tr, e.event); cell(tr, e.source);
      cell(tr, e.channel); cell(tr, e.symbol); cell(tr, e.detail);
      frag.append(tr);
    }
    tbody.replaceChildren(frag);
  }

  function renderOrders() {
    const o = S.orders;
    if (!o) return;
    const tbody = $("#strategies").tBodies[0];
    const frag = document.createDocumentFragment();
    for (const r of o.rows) {
      const tr = document.createElement("tr");
      tr.dataset.strategy = r.strategy; tr.dataset.symbol = r.symbol;
      if (r.modes.live) tr.className = "live";
      cell(tr, r.strategy); cell(tr, r.symbol);
      cell(tr, Object.entries(r.modes).map(([m, n]) => m + " " + n).join(", "));
      cell(tr, r.orders);
      for (const s of STATUSES) cell(tr, r.statuses[s] || 0, "st-" + s);
      cell(tr, r.duplicates); cell(tr, r.fills);
      cell(tr, r.filled_qty, "filled-qty"); cell(tr, r.notional, "notional"); cell(tr, r.position, "position");
      cell(tr, r.avg_cost == null ? "–" : r.avg_cost);
      const pnl = r.realised_pnl;
      cell(tr, pnl == null ? "–" : pnl, "pnl " + (pnl == null ? "" : pnl.startsWith("-") ? "neg" : pnl === "0" ? "" : "pos"));
      frag.append(tr);
    }
    if (!o.rows.length) {
      const tr = document.createElement("tr"); tr.className = "none";
      const td = cell(tr, "no orders yet", "muted"); td.colSpan = 16; frag.append(tr);
    }
    tbody.replaceChildren(frag);
    const rtbody = $("#recent-orders").tBodies[0];
    const rfrag = document.createDocumentFragment();
    for (const r of o.recent) {
      const tr = document.createElement("tr");
      tr.dataset.id = r.id;
      if (r.mode === "live") tr.className = "live";
      cell(tr, Charts.fmtTime(r.ts_done || r.ts_signal, true)); cell(tr, r.strategy); cell(tr, r.symbol);
      cell(tr, r.side, r.side); cell(tr, r.order_type); cell(tr, r.quantity); cell(tr, r.limit_price || r.trigger_price || "");
      cell(tr, r.status, "status"); cell(tr, r.mode, "mode"); cell(tr, r.filled_qty); cell(tr, r.avg_price); cell(tr, r.reason);
      rfrag.append(tr);
    }
    rtbody.replaceChildren(rfrag);
  }

  // ---- start ----------------------------------------------------------------------------------
  window.kracked = {
    state: S,
    /** Sizes of everything the page keeps: bounded, whatever the uptime. */
    stats() {
      const per = {};
      for (const [sym, v] of S.views) {
        let bars = 0, spread = 0;
        for (const a of v.bars.values()) bars += a.length;
        for (const a of v.spread.values()) spread += a.length;
        per[sym] = { bars, spread, markers: v.markers.size };
      }
      return { messages: S.messages, open: S.open.slice(), symbols: S.symbols.length, views: per,
        events: (S.health && S.health.recent.length) || 0, panels: document.querySelectorAll(".panel").length };
    },
  };

  readHash();
  $("#filter").addEventListener("input", () => { S.dirtyGlobal.add("picker"); scheduleRender(); });
  window.addEventListener("resize", () => { for (const v of S.views.values()) { v.dirty.add("bars"); v.dirty.add("book"); v.dirty.add("spread"); } scheduleRender(); });
  setInterval(() => {
    $("#clock").textContent = Charts.fmtTime(nowUs(), true) + " UTC";
    for (const v of S.views.values()) renderAge(v);
  }, 500);
  connect();
})();
