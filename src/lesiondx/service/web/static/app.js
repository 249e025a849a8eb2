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
  // a call made by a slice rule (ct-covid: >= k consecutive slices): its number is the rule's score, the highest
  // slice-probability threshold at which the rule still holds (positive at or above the rule's slice threshold),
  // not a calibrated probability of the disease. Without the details (a list row, a reader case): ct-covid without
  // a probability threshold.
  isRuleScore(task, r) {
    const d = r && r.details;
    if (d) return !!(d.rule && d.rule.k_consecutive);
    return task === "ct-covid" && (!r || r.threshold === null || r.threshold === undefined);
  },
  RULE_SCORE: "rule score",
  RULE_SCORE_MEANS: "the highest slice-probability threshold at which the consecutive-slice rule still holds — not a calibrated probability",
  // the name and the shown value of a result's number: "P(malignant) 72.0 %" or "rule score 0.84"
  pName(task, r) { return LX.isRuleScore(task, r) ? LX.RULE_SCORE : LX.pOf(task); },
  pText(task, r, p) { return LX.isRuleScore(task, r) ? LX.num(p) : LX.pct(p); },
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
  // the colour class of a call: a study the model could not assess is neither a positive nor a reassuring negative
  labelClass(task, r) {
    if (/^not assessable/i.test((r && r.label) || "")) return "unassessable";
    return !LX.noLesion(task, r) && LX.isPositive(r.label) ? "positive" : "negative";
  },
  isPositive(label) { return !/^no\b/i.test(label || "") && /malig|covid|lesion|positive/i.test(label || ""); },
  // The server stores uploads as file-001... (natural order of the sent names; the names never leave the browser).
  // These map them back for this browser tab: sentOrder(names)[rank - 1] is the file stored as file-<rank>.
  sentOrder(names) {
    const key = n => String(n).split(/(\d+)/).map(x => /^\d+$/.test(x) ? Number(x) : x.toLowerCase());
    const cmp = (a, b) => {  // as lesiondx.io.raster.natural_key: digit runs compared as numbers
      const x = key(a), y = key(b);
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        if (x[i] !== y[i]) return typeof x[i] === "number" && typeof y[i] === "number" ? x[i] - y[i] : (String(x[i]) < String(y[i]) ? -1 : 1);
      }
      return x.length - y.length;
    };
    return names.map((n, i) => i).sort((a, b) => cmp(names[a], names[b]) || a - b).map(i => names[i]);
  },
  ownName(pseudo, sent) {
    const m = /^file-(\d+)[^/]*(.*)$/.exec(String(pseudo || ""));
    return m && sent && sent[Number(m[1]) - 1] ? sent[Number(m[1]) - 1] + (m[2] || "") : String(pseudo || "");
  },
  remember(id, sent) { try { sessionStorage.setItem("lesiondx-sent-" + id, JSON.stringify(sent)); } catch (e) { /* storage full or off */ } },
  sentNames(id) { try { return JSON.parse(sessionStorage.getItem("lesiondx-sent-" + id) || "null"); } catch (e) { return null; } },
  // Polling pages stop after a 401 until the token changes (the header field, or another tab): a wrong stored token
  // polled every few seconds would reach the service's wrong-token limit (20 in 60 s -> 429) and lock this address out.
  tokenListeners: [],
  onTokenChange(fn) { LX.tokenListeners.push(fn); },
  tokenChanged() { LX.tokenListeners.forEach(fn => fn()); },
  REFUSED: "the API token was refused: enter the right token in the field above (not retried until it changes)",
  header() {
    const t = document.getElementById("token");
    if (t) { t.value = LX.token(); t.addEventListener("change", () => { localStorage.setItem("lesiondx-token", t.value.trim()); LX.tokenChanged(); }); }
    window.addEventListener("storage", e => { if (e.key === "lesiondx-token") { if (t) t.value = LX.token(); LX.tokenChanged(); } });
  },
};
document.addEventListener("DOMContentLoaded", LX.header);
