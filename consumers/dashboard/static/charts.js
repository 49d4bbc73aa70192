/* kracked dashboard charts: candles with order markers, cumulative depth, spread series.
 * Hand-written on <canvas> (no library, nothing fetched). Numbers are parsed to floats ONLY to place
 * pixels; every value printed on a chart is the exact decimal string received from the server.
 * Each draw writes what it drew to the canvas's data-* attributes (tests and debugging read them). */
"use strict";

(function () {
  const C = {
    up: "#26a269", down: "#e5484d", grid: "#232b35", axis: "#7c8896", text: "#d7dde4",
    accent: "#4c8dff", grey: "#59636e", warn: "#f5a524", bidFill: "rgba(38,162,105,.25)",
    askFill: "rgba(229,72,77,.25)", band: "rgba(76,141,255,.16)",
  };
  const FONT = "11px ui-sans-serif, system-ui, 'DejaVu Sans', sans-serif";

  /** Size the backing store to the element (device pixels) and return a ready context. */
  function prep(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(10, canvas.clientWidth), h = Math.max(10, canvas.clientHeight);
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    return { ctx, w, h };
  }

  function decimals(text) {
    if (text == null) return 0;
    const i = String(text).indexOf(".");
    return i < 0 ? 0 : Math.min(8, String(text).length - i - 1);
  }

  function fmtTime(us, withSeconds) {
    const d = new Date(Math.floor(us / 1000));
    const p = (n) => String(n).padStart(2, "0");
    return p(d.getUTCHours()) + ":" + p(d.getUTCMinutes()) + (withSeconds ? ":" + p(d.getUTCSeconds()) : "");
  }

  function message(ctx, w, h, text) {
    ctx.fillStyle = C.axis;
    ctx.textAlign = "center";
    ctx.fillText(text, w / 2, h / 2);
  }

  /** Horizontal grid lines with price labels on the right; returns the y mapping. */
  function priceAxis(ctx, box, lo, hi, dec) {
    const { x0, x1, y0, y1 } = box;
    const y = (v) => y0 + ((hi - v) / (hi - lo)) * (y1 - y0);
    ctx.strokeStyle = C.grid;
    ctx.fillStyle = C.axis;
    ctx.textAlign = "left";
    ctx.lineWidth = 1;
    for (let k = 0; k <= 4; k++) {
      const v = lo + ((hi - lo) * k) / 4;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x0, yy); ctx.lineTo(x1, yy); ctx.stroke();
      ctx.fillText(v.toFixed(dec), x1 + 4, yy);
    }
    return y;
  }

  function tag(ctx, x, y, text, color) {
    const tw = ctx.measureText(text).width + 8;
    ctx.fillStyle = color;
    ctx.fillRect(x, y - 8, tw, 16);
    ctx.fillStyle = "#fff";
    ctx.textAlign = "left";
    ctx.fillText(text, x + 4, y);
  }

  function lowerBound(arr, key, value) {
    let lo = 0, hi = arr.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid][key] < value) lo = mid + 1; else hi = mid; }
    return lo;
  }

  /** Candles of one interval, with the order markers that fall in the visible bars. */
  function drawCandles(canvas, bars, markers, intervalS) {
    const { ctx, w, h } = prep(canvas);
    const box = { x0: 6, x1: w - 78, y0: 20, y1: h - 20 };  // the legend has the top line to itself
    const slot = 8;
    const n = Math.max(1, Math.floor((box.x1 - box.x0) / slot));
    const vis = bars.slice(-n);
    const ds = canvas.dataset;
    ds.bars = String(vis.length);
    ds.total = String(bars.length);
    ds.interval = String(intervalS || "");
    ds.lastStart = vis.length ? String(vis[vis.length - 1].start) : "";
    ds.lastClose = vis.length ? vis[vis.length - 1].close : "";
    if (!vis.length) {
      ds.markers = "0"; ds.markerIds = "";
      message(ctx, w, h, intervalS ? "no " + intervalS + " s bars yet" : "no bars yet");
      return;
    }
    const first = vis[0].start, lastBar = vis[vis.length - 1];
    // markers in range: from the first visible bar on (later ones sit on the newest bar)
    const placed = [];
    for (const m of markers) {
      if (m.ts == null || m.ts < first) continue;
      let i = lowerBound(vis, "start", m.ts + 1) - 1;
      if (i < 0) continue;
      const bar = vis[i];
      const price = m.price != null ? parseFloat(m.price) : parseFloat(bar.close);
      if (!isFinite(price)) continue;
      placed.push({ m, i, price });
    }
    let lo = Infinity, hi = -Infinity;
    for (const b of vis) {
      // open/close too: a bar is drawn whole even if its high/low were inconsistent
      lo = Math.min(lo, parseFloat(b.low), parseFloat(b.open), parseFloat(b.close));
      hi = Math.max(hi, parseFloat(b.high), parseFloat(b.open), parseFloat(b.close));
    }
    for (const p of placed) { lo = Math.min(lo, p.price); hi = Math.max(hi, p.price); }
    if (!(hi > lo)) { const pad = Math.abs(hi) * 0.001 || 1; lo -= pad; hi += pad; }
    const padY = (hi - lo) * 0.08; lo -= padY; hi += padY;
    const dec = Math.max(decimals(lastBar.close), decimals(lastBar.high));
    const y = priceAxis(ctx, box, lo, hi, dec);
    const x = (i) => box.x0 + i * slot + slot / 2;
    const bw = Math.max(1, slot - 3);
    for (let i = 0; i < vis.length; i++) {
      const b = vis[i];
      const o = parseFloat(b.open), c = parseFloat(b.close);
      const col = c >= o ? C.up : C.down;
      const xx = Math.round(x(i)) + 0.5;
      ctx.strokeStyle = col; ctx.fillStyle = col;
      ctx.beginPath(); ctx.moveTo(xx, y(parseFloat(b.high))); ctx.lineTo(xx, y(parseFloat(b.low))); ctx.stroke();
      const top = y(Math.max(o, c)), bot = y(Math.min(o, c));
      ctx.fillRect(Math.round(xx - bw / 2), top, bw, Math.max(1, bot - top));
    }
    // time labels
    ctx.fillStyle = C.axis; ctx.textAlign = "center";
    // at most 6 labels, and never closer than a label's width: a few bars sit 8 px apart
    const labelW = ctx.measureText(fmtTime(lastBar.start, intervalS < 60)).width + 12;
    const every = Math.max(1, Math.ceil(vis.length / 6), Math.ceil(labelW / slot));
    let right = -Infinity;
    for (let i = 0; i < vis.length; i += every) {
      const label = fmtTime(vis[i].start, intervalS < 60);
      const half = ctx.measureText(label).width / 2;
      const cx = Math.max(box.x0 + half, x(i));  // never clipped at the left edge
      if (cx - half < right + 6) continue;  // the first label was pushed right: skip what it covers
      ctx.fillText(label, cx, h - 9);
      right = cx + half;
    }
    // last close: dashed line and the exact string
    const yc = y(parseFloat(lastBar.close));
    ctx.setLineDash([3, 3]); ctx.strokeStyle = C.axis;
    ctx.beginPath(); ctx.moveTo(box.x0, yc); ctx.lineTo(box.x1, yc); ctx.stroke(); ctx.setLineDash([]);
    tag(ctx, box.x1 + 2, yc, lastBar.close, parseFloat(lastBar.close) >= parseFloat(lastBar.open) ? C.up : C.down);
    // markers: buy ▲ under the price, sell ▼ over it; live filled, dry-run/validate hollow,
    // rejected/failed grey; an exit gets a ring
    const ids = [];
    for (const { m, i, price } of placed) {
      const xx = x(i), yy = y(price), buy = m.side === "buy";
      const bad = m.status === "rejected" || m.status === "failed";
      const col = bad ? C.grey : buy ? C.up : C.down;
      const tip = buy ? yy + 4 : yy - 4, base = buy ? yy + 14 : yy - 14;
      ctx.beginPath(); ctx.moveTo(xx, tip); ctx.lineTo(xx - 6, base); ctx.lineTo(xx + 6, base); ctx.closePath();
      ctx.lineWidth = 2; ctx.strokeStyle = col;
      if (m.live) { ctx.fillStyle = col; ctx.fill(); } else { ctx.fillStyle = "#0f1318"; ctx.fill(); }
      ctx.stroke();
      if (m.effect === "exit") { ctx.beginPath(); ctx.arc(xx, yy, 4, 0, Math.PI * 2); ctx.stroke(); }
      ctx.lineWidth = 1;
      ids.push(m.id);
    }
    ds.markers = String(placed.length);
    ds.markerIds = ids.join(",");
    ctx.fillStyle = C.axis; ctx.textAlign = "left";
    ctx.fillText((intervalS >= 60 ? intervalS / 60 + " min" : intervalS + " s") + " · ▲ buy ▼ sell · filled = live, hollow = dry-run", box.x0 + 2, 8);
  }

  /** Cumulative depth: bids stepping left from the best bid, asks right from the best ask. */
  function drawDepth(canvas, book) {
    const { ctx, w, h } = prep(canvas);
    const ds = canvas.dataset;
    if (!book || (!book.bids.length && !book.asks.length)) { ds.levels = "0"; message(ctx, w, h, "no book yet"); return; }
    const trusted = book.verdict === "verified";
    const bids = book.bids.map((l) => [parseFloat(l[0]), parseFloat(l[2])]);
    const asks = book.asks.map((l) => [parseFloat(l[0]), parseFloat(l[2])]);
    const box = { x0: 6, x1: w - 6, y0: 8, y1: h - 20 };
    let lo = bids.length ? bids[bids.length - 1][0] : asks[0][0];
    let hi = asks.length ? asks[asks.length - 1][0] : bids[0][0];
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    let qmax = 0;
    for (const l of bids) qmax = Math.max(qmax, l[1]);
    for (const l of asks) qmax = Math.max(qmax, l[1]);
    qmax = qmax || 1;
    const x = (p) => box.x0 + ((p - lo) / (hi - lo)) * (box.x1 - box.x0);
    const y = (q) => box.y1 - (q / qmax) * (box.y1 - box.y0);
    function side(levels, fill, stroke, dir) {
      if (!levels.length) return;
      ctx.beginPath();
      ctx.moveTo(x(levels[0][0]), box.y1);
      let prevQ = 0;
      for (const [p, q] of levels) { ctx.lineTo(x(p), y(prevQ)); ctx.lineTo(x(p), y(q)); prevQ = q; }
      const edge = dir < 0 ? box.x0 : box.x1;
      ctx.lineTo(edge, y(prevQ)); ctx.lineTo(edge, box.y1); ctx.closePath();
      ctx.fillStyle = fill; ctx.fill(); ctx.strokeStyle = stroke; ctx.stroke();
    }
    side(bids, trusted ? C.bidFill : "rgba(89,99,110,.25)", trusted ? C.up : C.grey, -1);
    side(asks, trusted ? C.askFill : "rgba(89,99,110,.25)", trusted ? C.down : C.grey, 1);
    ctx.fillStyle = C.axis;
    ctx.textAlign = "left"; ctx.fillText(book.bids.length ? book.bids[book.bids.length - 1][0] : "", box.x0, h - 9);
    ctx.textAlign = "right"; ctx.fillText(book.asks.length ? book.asks[book.asks.length - 1][0] : "", box.x1, h - 9);
    ctx.textAlign = "center";
    ctx.fillText("cumulative depth", (box.x0 + box.x1) / 2, h - 9);
    if (!trusted) {
      ctx.save(); ctx.globalAlpha = 0.85; ctx.fillStyle = C.down; ctx.font = "bold 16px sans-serif";
      ctx.fillText("UNVERIFIED", (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2); ctx.restore();
    }
    ds.levels = String(book.bids.length + book.asks.length);
    ds.verdict = book.verdict;
  }

  /** Spread per interval: min–max band and time-weighted mean in price (left), close in bps (dashed). */
  function drawSpread(canvas, points, intervalS) {
    const { ctx, w, h } = prep(canvas);
    const box = { x0: 6, x1: w - 78, y0: 8, y1: h - 20 };
    const n = Math.max(1, Math.floor((box.x1 - box.x0) / 4));
    const vis = points.slice(-n);
    const ds = canvas.dataset;
    ds.points = String(vis.length);
    ds.interval = String(intervalS || "");
    if (!vis.length) { message(ctx, w, h, "no spread yet"); return; }
    let lo = Infinity, hi = -Infinity, blo = Infinity, bhi = -Infinity;
    for (const p of vis) {
      lo = Math.min(lo, parseFloat(p.min)); hi = Math.max(hi, parseFloat(p.max));
      blo = Math.min(blo, parseFloat(p.close_bps)); bhi = Math.max(bhi, parseFloat(p.close_bps));
    }
    if (!(hi > lo)) { const pad = Math.abs(hi) * 0.1 || 1; lo -= pad; hi += pad; }
    if (!(bhi > blo)) { const pad = Math.abs(bhi) * 0.1 || 1; blo -= pad; bhi += pad; }
    const last = vis[vis.length - 1];
    const y = priceAxis(ctx, box, lo, hi, Math.max(decimals(last.max), decimals(last.twa)));
    const yb = (v) => box.y0 + ((bhi - v) / (bhi - blo)) * (box.y1 - box.y0);
    const step = vis.length > 1 ? (box.x1 - box.x0) / (vis.length - 1) : 0;
    const x = (i) => box.x0 + i * step;
    ctx.beginPath();
    vis.forEach((p, i) => ctx.lineTo(x(i), y(parseFloat(p.max))));
    for (let i = vis.length - 1; i >= 0; i--) ctx.lineTo(x(i), y(parseFloat(vis[i].min)));
    ctx.closePath(); ctx.fillStyle = C.band; ctx.fill();
    ctx.beginPath(); ctx.strokeStyle = C.accent; ctx.lineWidth = 1.5;
    vis.forEach((p, i) => (i ? ctx.lineTo(x(i), y(parseFloat(p.twa))) : ctx.moveTo(x(i), y(parseFloat(p.twa)))));
    ctx.stroke();
    ctx.beginPath(); ctx.setLineDash([4, 3]); ctx.strokeStyle = C.warn; ctx.lineWidth = 1;
    vis.forEach((p, i) => (i ? ctx.lineTo(x(i), yb(parseFloat(p.close_bps))) : ctx.moveTo(x(i), yb(parseFloat(p.close_bps)))));
    ctx.stroke(); ctx.setLineDash([]);
    tag(ctx, box.x1 + 2, yb(parseFloat(last.close_bps)), last.close_bps + " bps", "#8a6414");
    ctx.fillStyle = C.axis; ctx.textAlign = "center";
    ctx.fillText(fmtTime(vis[0].start, true), box.x0 + 30, h - 9);
    ctx.fillText(fmtTime(last.start, true), box.x1 - 30, h - 9);
    ctx.fillText("— twa (price) ▒ min–max ┄ close (bps)", (box.x0 + box.x1) / 2, h - 9);
  }

  window.KrackedCharts = { drawCandles, drawDepth, drawSpread, fmtTime };
})();
