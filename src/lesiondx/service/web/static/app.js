// lesiondx web UI helpers: API calls with the optional token, images fetched as blobs.
"use strict";
const LX = {
  token() { return localStorage.getItem("lesiondx-token") || ""; },
  headers(extra) {
    const h = Object.assign({}, extra || {});
    if (LX.token()) h["Authorization"] = "Bearer " + LX.token();
    return h;
  },
  async api(path, opts) {
    opts = opts || {};
    const res = await fetch(path, Object.assign({}, opts, { headers: LX.headers(opts.headers) }));
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
    if (!res.ok) {
      const detail = body && body.detail !== undefined ? body.detail : body;
      const err = new Error(typeof detail === "string" ? detail : (detail && detail.message) || res.statusText);
      err.status = res.status; err.detail = detail; throw err;
    }
    return body;
  },
  async image(img, url) {
    const res = await fetch(url, { headers: LX.headers() });
    if (!res.ok) { img.alt = "image unavailable (" + res.status + ")"; return; }
    img.src = URL.createObjectURL(await res.blob());
  },
  esc(s) { return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c])); },
  pct(p) { return p === null || p === undefined ? "–" : (100 * p).toFixed(1) + " %"; },
  badge(status) { return '<span class="badge ' + LX.esc(status) + '">' + LX.esc(status) + "</span>"; },
  // what a study's probability is the probability of, per task (shown as "P(...)")
  POSITIVE: { "us-liver": "malignant", "ct-covid": "COVID-19 pneumonia", "ct-liver": "liver lesion" },
  OF: { "us-liver": "that the focal liver lesion is malignant (vs benign)", "ct-covid": "of COVID-19 pneumonia for the patient (whole series)",
        "ct-liver": "of a focal liver lesion in the series" },
  pOf(task) { return "P(" + (LX.POSITIVE[task] || "positive") + ")"; },
  num(x, d) { return x === null || x === undefined || x === "" || isNaN(x) ? "–" : Number(x).toFixed(d === undefined ? 2 : d); },
  noLesion(task, r) {  // the task found no focal lesion: say so instead of a class of a lesion that is not there
    const d = r.details || {};
    return (task === "ct-liver" && (d.n_inside_liver === 0 || (d.n_lesion_boxes === 0))) || /^(none|no lesion|no liver lesion|no focal lesion found)$/i.test(r.label || "");
  },
  boxText(b, spacing) {  // a box in words: where and how big (mm when the pixel spacing is known)
    const c = Array.isArray(b) ? b : (b.box || b.bbox);
    if (Array.isArray(b)) b = {};  // a bare [x1, y1, x2, y2]: no slice, location or score
    if (!Array.isArray(c) || c.length < 4) return "";
    const w = c[2] - c[0], h = c[3] - c[1];
    const size = spacing ? (w * spacing[1]).toFixed(0) + " × " + (h * spacing[0]).toFixed(0) + " mm" : Math.round(w) + " × " + Math.round(h) + " px";
    return ["x " + Math.round(c[0]) + ", y " + Math.round(c[1]) + " px", b.slice !== undefined && b.slice !== null ? "slice " + b.slice : "", b.location || b.quadrant || "", size,
            b.score !== undefined && b.score !== null ? "score " + Number(b.score).toFixed(2) : ""].filter(Boolean).join(", ");
  },
  isPositive(label) { return !/^no\b/i.test(label || "") && /malig|covid|lesion|positive/i.test(label || ""); },
  header() {
    const t = document.getElementById("token");
    if (t) { t.value = LX.token(); t.addEventListener("change", () => localStorage.setItem("lesiondx-token", t.value.trim())); }
  },
};
document.addEventListener("DOMContentLoaded", LX.header);
