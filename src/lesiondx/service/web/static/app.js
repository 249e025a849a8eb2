// lesiondx web UI helpers: API calls with the optional token, images fetched as blobs.
"use strict";
const LX = {
  token() { return localStorage.getItem("lesiondx-token") || ""; },
  headers(extra) {
    const h = Object.assign({}, extra || {});
    if (LX.token()) h["Authorization"] = "Bearer " + LX.token();
    const user = localStorage.getItem("lesiondx-user");
    if (user) h["X-Lesiondx-User"] = user;
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
  isPositive(label) { return !/^no\b/i.test(label || "") && /malig|covid|lesion|positive/i.test(label || ""); },
  header() {
    const t = document.getElementById("token");
    if (t) { t.value = LX.token(); t.addEventListener("change", () => localStorage.setItem("lesiondx-token", t.value.trim())); }
  },
};
document.addEventListener("DOMContentLoaded", LX.header);
