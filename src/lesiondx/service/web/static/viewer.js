// lesiondx stack viewer: every slice of a series, windowed in the browser from raw int16 (HU for CT).
// Scroll / arrow keys / slider = slice; left drag = window/level; right or shift drag = pan; ctrl+wheel,
// + / - = zoom; presets (keys 1-9, their W/L in HU on the buttons); n / p = next / previous slice with a finding;
// the value under the pointer (HU for CT); heat maps (magma, alpha; h) and findings (boxes, SVG; b) each on/off, with
// opacity; m = measure a distance (drag a line, mm from the row and column pixel spacing; Delete removes the last).
"use strict";
const LXViewer = {
  CACHE: 96,  // slices kept in memory (0.5 MB each at 512²)
  WHEEL_PX: 50,  // wheel scroll (px) per slice step when it comes in small trackpad deltas
  PRESET_NAMES: { abdomen: "soft tissue" },  // lesiondx.io.windows' abdomen window (40/400) is the soft-tissue window
  // "W 1500 L −600 HU": a window's width and level (centre), in HU on a CT stack
  wl(w, hu) { return "W " + Math.round(w.width) + " L " + String(Math.round(w.center)).replace("-", "−") + (hu ? " HU" : ""); },
  async mount(root, base, opts) {
    opts = opts || {};
    const info = await LX.api(base + "/slices" + (opts.query || ""));
    const v = { root, base, info, n: 0, wc: info.window.center, ww: info.window.width, zoom: 1, panX: 0, panY: 0,
                heatOn: opts.overlay !== false, boxesOn: opts.overlay !== false, opacity: 1, measure: false, lines: [], cache: new Map(), heat: new Map(), pending: new Map(),
                showAI: opts.showAI !== false, spacing: info.spacing_mm };
    root.classList.add("viewer");
    root.tabIndex = 0;
    const presets = Object.entries(info.presets || {}).map(([k, w], i) => {
      const name = LXViewer.PRESET_NAMES[k] || k;
      return '<button type="button" data-preset="' + LX.esc(k) + '" aria-pressed="false" title="' + LX.esc(name) + " window: level (centre) " + w.center +
        " HU, width " + w.width + " HU" + (i < 9 ? " (key " + (i + 1) + ")" : "") + '">' + LX.esc(name) + ' <span class="pv">' + LX.esc(LXViewer.wl(w, false)) + "</span></button>";
    }).join("");
    const ai = v.showAI && (info.findings.length || info.heatmaps.length), nPresets = Math.min(9, Object.keys(info.presets || {}).length);
    const mm = LXViewer.pixelMm(v), heat = ai && info.heatmaps.length, boxes = ai && info.findings.length;
    const help = "wheel, ↑ ↓: slice · drag: window/level · right-drag: pan · ctrl+wheel: zoom" + (nPresets ? " · 1–" + nPresets + ": presets" : "") +
      (boxes ? " · n / p: next / previous finding" : "") + (heat ? " · h: heat map" : "") + (boxes ? " · b: boxes" : "") +
      (mm ? " · m: measure (drag a line), Delete: remove the last line" : "");
    const toggle = (cls, name, key, on) => '<button type="button" class="' + cls + '" aria-pressed="' + on + '" title="show or hide the ' + name + " (key " + key + ')">' +
      name + ' <span class="st">' + (on ? "on" : "off") + "</span></button>";
    root.innerHTML =
      '<div class="vtools">' + (presets ? '<span class="grp">Window ' + presets + "</span>" : "") +
      '<span class="grp"><button type="button" data-act="zoomin" title="zoom in (+)">+</button><button type="button" data-act="zoomout" title="zoom out (−)">−</button><button type="button" data-act="reset" title="reset zoom, pan and window (R)">reset</button></span>' +
      (ai ? '<span class="grp">' + (heat ? toggle("v-heat", "heat map", "h", v.heatOn) : "") + (boxes ? toggle("v-boxes", "boxes", "b", v.boxesOn) : "") + ' <label>opacity <input type="range" class="v-opacity" min="0" max="1" step="0.05" value="1"> <output class="v-opacity-value">100 %</output></label>' +
        (info.heatmaps.length ? '<span class="vlegend" title="the model\'s lesion probability per pixel: transparent at 0, more opaque and brighter towards 1">heat map: probability 0 <i class="magma"></i> 1</span>' : "") + "</span>" : "") +
      '<span class="grp">' + (mm ? '<button type="button" class="v-measure" aria-pressed="false" title="measure a distance: drag a line on the image (key m)">measure <span class="st">off</span></button>' +
        '<button type="button" class="v-clear" data-act="clear" title="remove the measured lines on this slice (Delete: the last one)" disabled>remove lines</button>' :
        '<span class="v-nospacing muted" title="the images carry no pixel spacing, so no distance can be given in mm">measure: no pixel spacing</span>') + "</span>" +
      "</div>" +
      '<div class="vstage"><canvas class="vcanvas"></canvas><svg class="vsvg" xmlns="http://www.w3.org/2000/svg"></svg>' +
      '<div class="vcorner tl"></div><div class="vcorner tr"></div><div class="vcorner br"></div></div>' +
      '<div class="vslide"><input type="range" class="v-slider" min="0" max="' + (info.n - 1) + '" value="0" aria-label="slice"><div class="vticks"></div></div><div class="vhelp">' + LX.esc(help) + "</div>" +
      (ai ? '<div class="vfind"><h3>Findings (' + info.findings.length + ")</h3>" + (info.findings.length ? '<ol class="v-findings">' + info.findings.map((f, i) =>
        '<li><button type="button" data-finding="' + i + '">' + LX.esc(LXViewer.findingText(v, f)) + "</button></li>").join("") + "</ol>" : '<p class="muted">no boxes on any slice</p>') + "</div>" : "");
    v.canvas = root.querySelector(".vcanvas"); v.svg = root.querySelector(".vsvg"); v.slider = root.querySelector(".v-slider");
    v.off = document.createElement("canvas"); v.off.width = info.cols; v.off.height = info.rows;
    v.ticks = root.querySelector(".vticks");
    const marks = new Set(info.findings.map(f => f.slice));
    if (ai) v.ticks.innerHTML = Array.from(marks).map(s => '<i style="left:' + (info.n > 1 ? 100 * s / (info.n - 1) : 0).toFixed(2) + '%"></i>').join("");
    LXViewer.bind(v);
    v.go = n => LXViewer.go(v, n);
    // the middle slice, or the first finding; opts.middle: always the middle (both reader-study arms open alike)
    const first = !opts.middle && info.findings.length && v.showAI ? info.findings[0].slice : Math.floor(info.n / 2);
    await LXViewer.go(v, first);
    root.lxviewer = v;
    return v;
  },
  findingText(v, f) {
    const parts = ["Im " + f.instance];
    if (f.location) parts.push(f.location);
    if (f.score !== null && f.score !== undefined) parts.push("score " + Number(f.score).toFixed(2));
    const mm = LXViewer.sizeMm(v, f);
    if (mm) parts.push(mm);
    if (f.inside_liver === false) parts.push("outside liver");
    return parts.join(" · ");
  },
  // "\nspacing 2.0 mm · pixel 0.60 mm": between slices and within a slice (from the series' geometry)
  spacingText(s) {
    if (!s || s.length < 3) return "";
    return "\nspacing " + Number(s[0]).toFixed(1) + " mm · pixel " + Number(s[2]).toFixed(2) + (s[1] !== s[2] ? " × " + Number(s[1]).toFixed(2) : "") + " mm";
  },
  // "\ngap: 4.0 mm to the previous slice": a slice farther from a neighbour than 1.5 × the series' spacing (missing slices)
  gapText(v) {
    const p = v.info.positions_mm, s = v.spacing, n = v.n;
    if (!p || !s || !(s[0] > 0)) return "";
    const gap = k => k >= 0 && k + 1 < p.length && Math.abs(p[k + 1] - p[k]) > 1.5 * s[0] ? Math.abs(p[k + 1] - p[k]) : 0;
    const before = gap(n - 1), after = gap(n);
    return (before ? "\ngap: " + before.toFixed(1) + " mm to the previous slice" : "") + (after ? "\ngap: " + after.toFixed(1) + " mm to the next slice" : "");
  },
  // [row, column] pixel spacing in mm (between rows = along y, between columns = along x), or null where unknown
  pixelMm(v) {
    const s = v.spacing;
    return Array.isArray(s) && s.length >= 3 && s[1] > 0 && s[2] > 0 ? [Number(s[1]), Number(s[2])] : null;
  },
  // a line's length in mm: x steps by the column spacing, y steps by the row spacing
  lineMm(v, line) {
    const [row, col] = LXViewer.pixelMm(v);
    return Math.hypot((line.b.x - line.a.x) * col, (line.b.y - line.a.y) * row);
  },
  lineSvg(v, g, line) {
    const p = q => [(g.ox + q.x * g.s).toFixed(1), (g.oy + q.y * g.s).toFixed(1)], [x1, y1] = p(line.a), [x2, y2] = p(line.b);
    return '<g class="vline"><line x1="' + x1 + '" y1="' + y1 + '" x2="' + x2 + '" y2="' + y2 + '"/><circle cx="' + x1 + '" cy="' + y1 + '" r="3"/><circle cx="' + x2 + '" cy="' + y2 + '" r="3"/>' +
      '<text x="' + (+x2 + 6).toFixed(1) + '" y="' + (+y2 - 6).toFixed(1) + '">' + LXViewer.lineMm(v, line).toFixed(1) + " mm</text></g>";
  },
  setMeasure(v, on) {
    v.measure = on;
    const b = v.root.querySelector(".v-measure"); if (!b) return;
    b.setAttribute("aria-pressed", String(on)); b.querySelector(".st").textContent = on ? "on" : "off";
  },
  // heat map ("heat") or boxes ("boxes") on or off; the button says which
  setLayer(v, layer, on) {
    v[layer + "On"] = on;
    const b = v.root.querySelector(".v-" + layer);
    if (b) { b.setAttribute("aria-pressed", String(on)); b.querySelector(".st").textContent = on ? "on" : "off"; }
    LXViewer.draw(v);
  },
  sizeMm(v, f) {
    if (f.size_mm) return Number(f.size_mm).toFixed(0) + " mm";
    const s = v.spacing; if (!s || s.length < 2) return "";
    const row = s[s.length - 2], col = s[s.length - 1];
    return ((f.box[2] - f.box[0]) * col).toFixed(0) + " × " + ((f.box[3] - f.box[1]) * row).toFixed(0) + " mm";
  },
  async slice(v, n) {
    if (v.cache.has(n)) return v.cache.get(n);
    if (!v.pending.has(n)) {
      v.pending.set(n, (async () => {
        const res = await fetch(v.base + "/slices/" + n + ".raw", { headers: LX.headers() });
        if (!res.ok) throw new Error("slice " + n + ": HTTP " + res.status);
        const data = new Int16Array(await res.arrayBuffer());
        v.cache.set(n, data); v.pending.delete(n);
        if (v.cache.size > LXViewer.CACHE) v.cache.delete(v.cache.keys().next().value);
        return data;
      })());
    }
    return v.pending.get(n);
  },
  async heatImage(v, n) {
    if (!v.info.heatmaps.includes(n)) return null;
    if (!v.heat.has(n)) {
      v.heat.set(n, (async () => {
        const res = await fetch(v.base + "/heat/" + n + ".png", { headers: LX.headers() });
        if (!res.ok) return null;
        const img = new Image(); img.src = URL.createObjectURL(await res.blob()); await img.decode(); return img;
      })());
    }
    return v.heat.get(n);
  },
  async go(v, n) {
    n = Math.max(0, Math.min(v.info.n - 1, Math.round(n)));
    v.n = n; v.slider.value = n;
    v.data = await LXViewer.slice(v, n);
    v.heatImg = v.showAI ? await LXViewer.heatImage(v, n) : null;
    if (v.n !== n) return;  // scrolled on meanwhile
    LXViewer.window(v); LXViewer.draw(v);
    v.root.dataset.slice = n; v.root.dataset.instance = v.info.instance_numbers[n];
    [n - 1, n + 1, n + 2, n - 2].forEach(k => { if (k >= 0 && k < v.info.n) LXViewer.slice(v, k).catch(() => {}); });
  },
  window(v) {  // raw values → grey on the offscreen canvas (≈2 ms for 512²)
    const img = v.off.getContext("2d").createImageData(v.info.cols, v.info.rows), px = img.data, d = v.data;
    const lo = v.wc - v.ww / 2, k = 255 / v.ww;
    for (let i = 0, j = 0; i < d.length; i++, j += 4) {
      let g = (d[i] - lo) * k; g = g < 0 ? 0 : g > 255 ? 255 : g;
      px[j] = px[j + 1] = px[j + 2] = g; px[j + 3] = 255;
    }
    v.off.getContext("2d").putImageData(img, 0, 0);
  },
  geometry(v) {
    const stage = v.canvas.parentElement, w = stage.clientWidth, h = stage.clientHeight;
    const fit = Math.min(w / v.info.cols, h / v.info.rows), s = fit * v.zoom;
    return { w, h, s, ox: (w - v.info.cols * s) / 2 + v.panX, oy: (h - v.info.rows * s) / 2 + v.panY };
  },
  draw(v) {
    const g = LXViewer.geometry(v), dpr = window.devicePixelRatio || 1, c = v.canvas;
    if (c.width !== Math.round(g.w * dpr) || c.height !== Math.round(g.h * dpr)) {
      c.width = Math.round(g.w * dpr); c.height = Math.round(g.h * dpr); c.style.width = g.w + "px"; c.style.height = g.h + "px";
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0); ctx.fillStyle = "#000"; ctx.fillRect(0, 0, g.w, g.h);
    ctx.imageSmoothingEnabled = g.s < 3;
    ctx.drawImage(v.off, g.ox, g.oy, v.info.cols * g.s, v.info.rows * g.s);
    if (v.heatOn && v.showAI && v.heatImg) { ctx.globalAlpha = v.opacity; ctx.drawImage(v.heatImg, g.ox, g.oy, v.info.cols * g.s, v.info.rows * g.s); ctx.globalAlpha = 1; }
    const boxes = v.boxesOn && v.showAI ? v.info.findings.filter(f => f.slice === v.n) : [];
    v.svg.setAttribute("width", g.w); v.svg.setAttribute("height", g.h);
    v.svg.innerHTML = boxes.map(f => {
      const x = g.ox + f.box[0] * g.s, y = g.oy + f.box[1] * g.s, bw = (f.box[2] - f.box[0]) * g.s, bh = (f.box[3] - f.box[1]) * g.s;
      const label = LX.esc(LXViewer.findingText(v, f)), ty = y > 22 ? y - 6 : y + bh + 16;
      return '<g class="vbox" style="opacity:' + Math.max(0.35, v.opacity) + '"><rect x="' + x.toFixed(1) + '" y="' + y.toFixed(1) + '" width="' + bw.toFixed(1) + '" height="' + bh.toFixed(1) + '"/>' +
        '<text x="' + x.toFixed(1) + '" y="' + ty.toFixed(1) + '">' + label + "</text></g>";
    }).join("") + v.lines.filter(l => l.slice === v.n).map(l => LXViewer.lineSvg(v, g, l)).join("");
    const clear = v.root.querySelector(".v-clear");
    if (clear) clear.disabled = !v.lines.some(l => l.slice === v.n);
    const inst = v.info.instance_numbers[v.n], pos = v.info.positions_mm ? v.info.positions_mm[v.n] : null;
    v.slider.setAttribute("aria-valuetext", "Im " + inst + ", slice " + (v.n + 1) + " of " + v.info.n + (pos !== null ? ", z " + pos.toFixed(1) + " mm" : ""));
    v.root.querySelector(".vcorner.tl").textContent = "Im " + inst + "  (" + (v.n + 1) + " / " + v.info.n + ")" + (pos !== null ? "  z " + pos.toFixed(1) + " mm" : "") +
      LXViewer.spacingText(v.spacing) + LXViewer.gapText(v);
    const preset = Object.keys(v.info.presets || {}).find(k => v.info.presets[k].center === v.wc && v.info.presets[k].width === v.ww);
    v.root.querySelector(".vcorner.tr").textContent = LXViewer.wl({ width: v.ww, center: v.wc }, v.info.is_hu) +
      (preset ? "  " + (LXViewer.PRESET_NAMES[preset] || preset) : "") + (v.zoom !== 1 ? "  ×" + v.zoom.toFixed(1) : "");
    v.root.querySelectorAll("[data-preset]").forEach(b => b.setAttribute("aria-pressed", String(b.dataset.preset === preset)));
    LXViewer.probe(v);
    v.root.querySelectorAll("[data-finding]").forEach(b => b.classList.toggle("here", v.info.findings[+b.dataset.finding].slice === v.n));
  },
  // the stored value under the pointer (HU on a CT stack) and its pixel, in the bottom-right corner
  probe(v) {
    const p = v.pointer, corner = v.root.querySelector(".vcorner.br");
    const inside = p && v.data && p.x >= 0 && p.y >= 0 && p.x < v.info.cols && p.y < v.info.rows;
    corner.textContent = inside ? String(v.data[p.y * v.info.cols + p.x]).replace("-", "−") + (v.info.is_hu ? " HU" : "") + "  (x " + p.x + ", y " + p.y + ")" : "";
  },
  // the next (step 1) or previous (step -1) slice with a finding
  nextFinding(v, step) {
    const slices = Array.from(new Set(v.info.findings.map(f => f.slice))).sort((a, b) => step * (a - b));
    const target = slices.find(n => step * (n - v.n) > 0);
    if (target !== undefined) v.go(target);
  },
  bind(v) {
    const root = v.root, stage = root.querySelector(".vstage");
    root.addEventListener("click", e => {
      const t = e.target.closest("button"); if (!t) return;
      if (t.dataset.preset) { const w = v.info.presets[t.dataset.preset]; v.wc = w.center; v.ww = w.width; LXViewer.window(v); LXViewer.draw(v); }
      else if (t.dataset.finding !== undefined) { v.go(v.info.findings[+t.dataset.finding].slice); root.focus({ preventScroll: true }); }
      else if (t.dataset.act === "zoomin") LXViewer.zoomBy(v, 1.25);
      else if (t.dataset.act === "zoomout") LXViewer.zoomBy(v, 0.8);
      else if (t.dataset.act === "reset") LXViewer.reset(v);
      else if (t.dataset.act === "clear") { v.lines = v.lines.filter(l => l.slice !== v.n); LXViewer.draw(v); }
      else if (t.classList.contains("v-measure")) LXViewer.setMeasure(v, !v.measure);
      else if (t.classList.contains("v-heat")) LXViewer.setLayer(v, "heat", !v.heatOn);
      else if (t.classList.contains("v-boxes")) LXViewer.setLayer(v, "boxes", !v.boxesOn);
    });
    v.slider.addEventListener("input", () => v.go(+v.slider.value));
    const op = root.querySelector(".v-opacity");
    if (op) op.addEventListener("input", () => {
      v.opacity = +op.value; root.querySelector(".v-opacity-value").textContent = Math.round(100 * v.opacity) + " %"; LXViewer.draw(v);
    });
    let wheel = 0;  // trackpad scroll not yet turned into a slice step, in px
    stage.addEventListener("wheel", e => {
      e.preventDefault();
      if (e.ctrlKey || e.metaKey) LXViewer.zoomBy(v, e.deltaY < 0 ? 1.1 : 1 / 1.1);
      else {  // a mouse notch (≥ 50 px) is one slice; a trackpad's small deltas add up to one slice per 50 px
        wheel = Math.abs(e.deltaY) >= LXViewer.WHEEL_PX || e.deltaMode !== 0 ? 0 : wheel + e.deltaY;
        if (Math.abs(e.deltaY) >= LXViewer.WHEEL_PX || e.deltaMode !== 0) v.go(v.n + Math.sign(e.deltaY));
        else if (Math.abs(wheel) >= LXViewer.WHEEL_PX) { v.go(v.n + Math.sign(wheel)); wheel = 0; }
      }
    }, { passive: false });
    root.addEventListener("keydown", e => {
      const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 }[e.key];
      if (step && e.target.tagName !== "INPUT") { e.preventDefault(); v.go(v.n + step); }
      else if (e.key === "Home") { e.preventDefault(); v.go(0); }
      else if (e.key === "End") { e.preventDefault(); v.go(v.info.n - 1); }
      else if (e.key === "+" || e.key === "=") LXViewer.zoomBy(v, 1.25);
      else if (e.key === "-") LXViewer.zoomBy(v, 0.8);
      else if (e.key === "r" || e.key === "R") LXViewer.reset(v);
      else if (e.ctrlKey || e.altKey || e.metaKey || e.target.tagName === "INPUT") return;
      else if (/^[1-9]$/.test(e.key)) { const b = root.querySelectorAll("[data-preset]")[+e.key - 1]; if (b) b.click(); }
      else if ((e.key === "n" || e.key === "p") && v.showAI) LXViewer.nextFinding(v, e.key === "n" ? 1 : -1);
      else if (e.key === "h" || e.key === "b") { const b = root.querySelector(e.key === "h" ? ".v-heat" : ".v-boxes"); if (b) b.click(); }
      else if (e.key === "m" && LXViewer.pixelMm(v)) LXViewer.setMeasure(v, !v.measure);
      else if (e.key === "Delete" || e.key === "Backspace") {  // the last line drawn on this slice
        const last = v.lines.map(l => l.slice).lastIndexOf(v.n);
        if (last >= 0) { e.preventDefault(); v.lines.splice(last, 1); LXViewer.draw(v); }
      }
    });
    let drag = null;
    stage.addEventListener("contextmenu", e => e.preventDefault());
    stage.addEventListener("pointerdown", e => {
      root.focus({ preventScroll: true });
      drag = { x: e.clientX, y: e.clientY, pan: e.button === 2 || e.button === 1 || e.shiftKey, wc: v.wc, ww: v.ww, px: v.panX, py: v.panY };
      if (v.measure && !drag.pan) { const at = LXViewer.imageAt(v, e); drag.line = { slice: v.n, a: at, b: at }; v.lines.push(drag.line); }
      stage.setPointerCapture(e.pointerId);
    });
    stage.addEventListener("pointermove", e => {
      const g = LXViewer.geometry(v), box = v.canvas.getBoundingClientRect();
      v.pointer = { x: Math.floor((e.clientX - box.left - g.ox) / g.s), y: Math.floor((e.clientY - box.top - g.oy) / g.s) };
      if (!drag) { LXViewer.probe(v); return; }
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (drag.line) { drag.line.b = LXViewer.imageAt(v, e); LXViewer.draw(v); return; }
      if (drag.pan) { v.panX = drag.px + dx; v.panY = drag.py + dy; LXViewer.draw(v); return; }
      const scale = v.info.is_hu ? 4 : 1;  // HU per screen pixel of drag
      v.ww = Math.max(1, drag.ww + dx * scale); v.wc = drag.wc + dy * scale;
      LXViewer.window(v); LXViewer.draw(v);
    });
    ["pointerup", "pointercancel"].forEach(t => stage.addEventListener(t, () => {
      if (drag && drag.line && Math.hypot(drag.line.b.x - drag.line.a.x, drag.line.b.y - drag.line.a.y) * LXViewer.geometry(v).s < 3) {
        v.lines.splice(v.lines.indexOf(drag.line), 1); LXViewer.draw(v);  // a click, not a line
      }
      drag = null;
    }));
    stage.addEventListener("pointerleave", () => { v.pointer = null; LXViewer.probe(v); });
    window.addEventListener("resize", () => LXViewer.draw(v));
  },
  imageAt(v, e) {  // a pointer event's position in image pixels (fractional)
    const g = LXViewer.geometry(v), box = v.canvas.getBoundingClientRect();
    return { x: (e.clientX - box.left - g.ox) / g.s, y: (e.clientY - box.top - g.oy) / g.s };
  },
  zoomBy(v, f) { v.zoom = Math.max(0.5, Math.min(10, v.zoom * f)); LXViewer.draw(v); },
  reset(v) { v.zoom = 1; v.panX = v.panY = 0; v.wc = v.info.window.center; v.ww = v.info.window.width; LXViewer.window(v); LXViewer.draw(v); },
};
