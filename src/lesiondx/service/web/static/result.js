// lesiondx result page: the parts of a task's result a reader needs in plain words — whether the input is what the
// model was validated on, what the probability was compared to, and (ct-liver) each finding's features, the ones
// that could not be judged included. Pure functions of the result JSON (GET /api/studies/ID) returning HTML.
"use strict";
const LXR = {
  details(r) { return (r && r.details) || {}; },
  // the input gate and the out-of-distribution score, as a sentence and a CSS class ("ok" / "flag")
  scope(r) {
    const d = LXR.details(r), gate = d.gate || {}, ood = d.ood || null;
    const flagged = d.out_of_scope_flag === true || gate.out_of_scope_flag === true || d.validated_on_input === false;
    const reasons = [].concat(gate.reasons || [], d.out_of_scope_reasons || []).filter(Boolean);
    const parts = [];
    if (d.validated_on_input === undefined && d.out_of_scope_flag === undefined && !d.gate) {
      parts.push("not reported by this model");
    } else if (flagged) {
      parts.push("OUTSIDE what the model was validated on" + (reasons.length ? ": " + reasons.join("; ") : "") +
        ". Treat this result with extra caution.");
    } else {
      parts.push("passed: modality, image type, geometry and body region are what the model was made for.");
    }
    let oodFlag = false;
    if (ood && ood.score !== null && ood.score !== undefined) {
      oodFlag = ood.out_of_distribution === true;
      parts.push(oodFlag ? "Unlike the training data: distance " + LX.num(ood.score, 1) + " above the limit " + LX.num(ood.threshold, 1) +
                           " — the model has not seen images like this."
                         : "Like the training data: distance " + LX.num(ood.score, 1) + " (limit " + LX.num(ood.threshold, 1) + ").");
    }
    const peak = d.heatmap_peak || null;  // us-liver: where the heat map peaks (not a flag: often off the lesion)
    if (peak && peak.inside_roi === false) parts.push("Heat map: its peak lies outside the analysed region, so it does not point at the lesion.");
    if (d.caveat) parts.push("Caveat: " + d.caveat + ".");  // e.g. ct-covid: a negative call on a series with missing slices
    return { flagged: flagged || oodFlag || !!d.caveat, html: parts.map(LX.esc).join(" ") };
  },
  // the shipped model's limits from its card page (/models/TASK): the text after **Not for:** and **Never saw:**
  cardLimits(html) {
    const doc = new DOMParser().parseFromString(html || "", "text/html"), out = {};
    doc.querySelectorAll("strong").forEach(b => {
      const key = { "Not for:": "notFor", "Never saw:": "neverSaw" }[b.textContent.trim()];
      if (!key || out[key]) return;
      let text = "";
      for (let n = b.nextSibling; n && !(n.nodeName === "STRONG" && /:$/.test(n.textContent.trim())); n = n.nextSibling) text += n.textContent;
      out[key] = text.trim().replace(/\s+/g, " ");
    });
    return out.notFor || out.neverSaw ? out : null;
  },
  limitsHtml(l) {
    return !l ? "" : (l.notFor ? "<div><strong>Not validated for:</strong> " + LX.esc(l.notFor) + "</div>" : "") +
      (l.neverSaw ? "<div><strong>Never saw:</strong> " + LX.esc(l.neverSaw) + "</div>" : "");
  },
  // what the shown probability was compared to; a study decided by a rule says so instead of a bare dash
  threshold(r) {
    const t = r.threshold, d = LXR.details(r);
    if (t !== null && t !== undefined) return LX.num(t) + " (positive at or above)";
    if (d.rule && d.rule.k_consecutive) return (d.rule.prob_threshold !== undefined && d.rule.prob_threshold !== null ?
      "positive when the rule score is " + LX.num(d.rule.prob_threshold) + " or more, i.e. " : "") +
      "when ≥ " + d.rule.k_consecutive + " consecutive slices show a lesion in the same quadrant";
    const pLesion = r.p_lesion !== undefined && r.p_lesion !== null ? r.p_lesion : d.p_lesion;  // us-liver: no lesion found
    if (d.no_lesion_threshold !== undefined && d.no_lesion_threshold !== null && (r.probability === null || r.probability === undefined))
      return "no focal lesion: lesion probability " + LX.num(pLesion) + " is below the lesion threshold " + LX.num(d.no_lesion_threshold);
    if (r.probability === null || r.probability === undefined) return "none: this result gives no probability";
    return "not reported";
  },
  // a failed study in words: bad input (ImageReadError, the gate's InputRefused) says so without the class name
  failure(f) {
    if (!f) return "";
    const m = /^prediction failed: (?:ImageReadError|InputRefused): ([\s\S]*)$/.exec(f);
    return m ? "Not analysed — the input does not fit this task: " + m[1] : "Not analysed: " + f.replace(/^prediction failed: /, "");
  },
  FEATURE: { aphe: "arterial phase hyperenhancement", washout: "washout", enhancing_capsule: "enhancing capsule",
             water_density_non_enhancing: "water density, non-enhancing", peripheral_nodular_enhancement: "peripheral nodular enhancement",
             centripetal_fill_in: "centripetal fill-in", rim_enhancement: "rim enhancement",
             progressive_peripheral_enhancement: "progressive peripheral enhancement", central_scar: "central scar" },
  featureName(n) { return LXR.FEATURE[n] || String(n).replace(/_/g, " "); },
  // ct-liver (rule-table characterisation): findings are evidence, not a label or probability
  isEvidence(r) { return Array.isArray(LXR.details(r).findings) && LXR.details(r).findings.length > 0 && !r.label; },
  headline(r) {
    const f = LXR.details(r).findings, ev = LXR.details(r).evidence || {};
    const mal = (ev.malignant_patterns || []).length, ben = (ev.benign_patterns || []).length, ind = (ev.indeterminate || []).length;
    return f.length + " lesion finding(s): " + [mal ? mal + " malignant pattern" : "", ben ? ben + " benign pattern" : "",
      ind ? ind + " indeterminate" : ""].filter(Boolean).join(", ");
  },
  findings(r, nSlices) {
    const d = LXR.details(r), f = d.findings || [];
    if (!f.length) return "";
    const feat = x => x.present === true ? "present" : (x.present === false ? "absent" : "not judged");
    const unjudged = x => (x.features || []).filter(y => feat(y) === "not judged");
    const key = x => unjudged(x).map(y => y.name).sort().join();
    const same = f.every(x => key(x) === key(f[0]));  // single-phase series: the same features cannot be judged anywhere
    const name = y => '<span title="' + LX.esc(y.reason || "") + '">' + LX.esc(LXR.featureName(y.name)) + "</span>";
    const common = same && unjudged(f[0]).length ? '<p class="not-judged-all"><strong>Could not be judged for any finding:</strong> ' +
      unjudged(f[0]).map(y => name(y) + ' <span class="muted">(' + LX.esc(String(y.reason || "").replace(/^could not be judged: /, "")) + ")</span>").join(", ") + "</p>" : "";
    const rows = f.map(x => {
      const ev = x.evidence || {}, sl = x.slices || [];
      const where = sl.length ? "slices " + (sl[0] + 1) + (sl[1] !== undefined && sl[1] !== sl[0] ? "–" + (sl[1] + 1) : "") + (nSlices ? " of " + nSlices : "") : "";
      const by = { present: [], absent: [], "not judged": [] };
      (x.features || []).forEach(y => by[feat(y)].push(y));
      const list = k => by[k].map(name).join(", ") || "–";
      return '<tr data-finding="' + LX.esc(x.id) + '"><td>' + LX.esc(x.id) + "</td><td>" + LX.esc(where) + "</td><td>" +
        LX.esc(ev.pattern ? (ev.benign_malignant ? ev.benign_malignant + " pattern (" + ev.pattern + ")" : ev.pattern) : "indeterminate") +
        '</td><td class="present">' + list("present") + '</td><td class="absent">' + list("absent") + "</td>" + (same ? "" : '<td class="not-judged">' + list("not judged") + "</td>") + "</tr>";
    }).join("");
    return '<h3>Findings and their features</h3><p class="muted" style="font-size:12px">' + LX.esc(String(d.evidence && d.evidence.kind || "rule-table evidence, not a probability").replace(" (see findings)", "")) +
      (d.phases ? "; phases: " + LX.esc([].concat(d.phases).join(", ")) : "") + ". Hover a feature for the measurement.</p>" + common +
      '<table class="findings"><thead><tr><th>#</th><th>where</th><th>pattern</th><th>present</th><th>absent</th>' + (same ? "" : "<th>could not be judged</th>") + "</tr></thead><tbody>" +
      rows + "</tbody></table>";
  },
};
