"""Readable lesion characterisation on (multiphase) CT: measured attenuation per phase → LI-RADS-style
features → a transparent rule table of lesion-type evidence. No learned weights; nothing here is a
calibrated probability. Every threshold is a difference in HU against the patient's own liver (or the
lesion's own core), written below; ``MARGIN_HU`` is the same 15 HU the candidate detector uses.

Regions of one lesion on one slice (``d`` = distance to the lesion border, ``D`` = its maximum):
core = ``d ≥ 0.5 D`` (inner half), rim = ``d < 0.25 D`` (outer quarter), centre = ``d ≥ 0.8 D``,
liver ring = liver voxels 2–6 mm outside the lesion. Rim sectors: 16 angular sectors of the rim around
the lesion's centroid, compared within each slice (nodules need not line up between slices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

RULE_TABLE_VERSION = "rule-table-2026-12-06"  # bump when a feature threshold or rule changes (findings[].evidence.rules)
MARGIN_HU = 15.0  # smallest difference called brighter / darker (detector margin; ~3× the noise of a region mean)
NODULAR_SPREAD_HU = 30.0  # rim sectors differ this much (90th − 10th percentile): discontinuous, nodular
NODULE_ABOVE_LIVER_HU = 15.0  # brightest rim sector this much above liver: blood-pool-like nodules
WATER_HU = (-10.0, 20.0)  # water density (cyst), with room for noise and partial volume
WATER_CHANGE_HU = 10.0  # a non-enhancing lesion changes less than this between phases
CONTINUOUS_RIM = 0.75  # share of rim sectors brighter than the core for a continuous rim
SCAR_BELOW_LESION_HU = 30.0  # centre this much darker than the lesion: central scar
N_SECTORS = 16
LATER = ("portal-venous", "delayed")


@dataclass(frozen=True)
class PhaseMeasure:
    """Mean HU of one lesion in one phase (all its slices together) and of the liver ring around it."""

    phase: str
    lesion_hu: float
    core_hu: float
    rim_hu: float
    centre_hu: float
    liver_hu: float
    rim_spread_hu: float  # per slice: 90th − 10th percentile of the rim-sector means; averaged over slices
    rim_peak_hu: float  # per slice: the brightest rim-sector mean; averaged over slices
    rim_continuity: float  # per slice: share of rim sectors ≥ core + MARGIN_HU; averaged over slices


@dataclass(frozen=True)
class Feature:
    """One feature: ``present`` True / False / None (could not be judged), the HU that decided it, why."""

    name: str
    present: bool | None
    hu: float | None
    reason: str

    def as_dict(self) -> dict:
        return {"name": self.name, "present": self.present,
                "hu": None if self.hu is None else round(float(self.hu), 1), "reason": self.reason}


@dataclass(frozen=True)
class Rule:
    """A lesion type's row of the evidence table: ``required`` features must be present, ``excluded``
    must not be; ``supporting`` ones add half weight."""

    subtype: str
    group: str  # "benign" or "malignant"
    required: tuple[str, ...]
    supporting: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    excluded_must_be_judged: bool = True  # False: the required features already rule the excluded ones out


RULES: tuple[Rule, ...] = (
    Rule("cyst", "benign", ("water_density_non_enhancing",), (), ("aphe", "rim_enhancement"),
         excluded_must_be_judged=False),  # a water-dense core on a contrast phase does not enhance
    Rule("HCC", "malignant", ("aphe", "washout"), ("enhancing_capsule",)),
    Rule("HEM", "benign", ("peripheral_nodular_enhancement", "centripetal_fill_in")),
    Rule("FNH", "benign", ("aphe",), ("central_scar",), ("washout", "enhancing_capsule")),
    Rule("MET", "malignant", ("rim_enhancement",), (), ("progressive_peripheral_enhancement", "centripetal_fill_in")),
    Rule("ICC", "malignant", ("progressive_peripheral_enhancement",), ("rim_enhancement",), ("centripetal_fill_in", "aphe")),
)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def measure_phase(phase: str, hu: np.ndarray, lesion: np.ndarray, liver: np.ndarray, spacing_mm: float) -> PhaseMeasure:
    """Measure one lesion (mask ``lesion`` ``(S, H, W)``) in one phase's aligned ``hu`` with the ``liver`` mask."""
    hu = np.asarray(hu, np.float32)
    core, rim, centre, ring = [], [], [], []
    spreads, peaks, sectors = [], [], []
    near = max(1, int(round(2.0 / spacing_mm)))
    far = max(near + 1, int(round(6.0 / spacing_mm)))
    zs = np.nonzero(lesion.any(axis=(1, 2)))[0]
    for z in zs:
        rows, cols = np.nonzero(lesion[z])
        box = (slice(max(0, rows.min() - far - 2), rows.max() + far + 3),
               slice(max(0, cols.min() - far - 2), cols.max() + far + 3))
        m, v, liver_z = lesion[z][box], hu[z][box], liver[z][box]
        d = ndimage.distance_transform_edt(m)
        top = float(d.max())
        core.append(v[d >= 0.5 * top])
        centre.append(v[d >= 0.8 * top])
        band = m & (d < 0.25 * top)
        rim.append(v[band])
        outside = ndimage.distance_transform_edt(~m)
        ring.append(v[(outside > near) & (outside <= far) & liver_z])
        cy, cx = ndimage.center_of_mass(m)
        yy, xx = np.nonzero(band)
        k = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * N_SECTORS).astype(int) % N_SECTORS
        means = np.array([v[yy[k == s], xx[k == s]].mean() for s in range(N_SECTORS) if (k == s).any()])
        if means.size >= N_SECTORS // 2:  # per slice: nodules need not line up from slice to slice
            spreads.append(float(np.percentile(means, 90) - np.percentile(means, 10)))
            peaks.append(float(means.max()))
            sectors.append(means)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    ring_values, core_hu = cat(ring), _mean(cat(core))
    continuity = [float(np.mean(m - core_hu >= MARGIN_HU)) for m in sectors]
    return PhaseMeasure(phase, _mean(hu[lesion]), core_hu, _mean(cat(rim)), _mean(cat(centre)),
                        float(np.median(ring_values)) if ring_values.size else float("nan"),
                        float(np.mean(spreads)) if spreads else float("nan"),
                        float(np.mean(peaks)) if peaks else float("nan"),
                        float(np.mean(continuity)) if continuity else float("nan"))


def _need(name: str, what: str) -> Feature:
    return Feature(name, None, None, f"could not be judged: needs {what}")


def _no_arterial_rim(name: str, a: PhaseMeasure | None, field: str) -> Feature | None:
    """The not-judged feature when there is no arterial phase or its rim ``field`` could not be measured."""
    if a is None:
        return _need(name, "an arterial phase")
    return None if np.isfinite(getattr(a, field)) else _need(name, "a measurable rim")


def _later(m: Mapping[str, PhaseMeasure]) -> PhaseMeasure | None:
    return next((m[p] for p in LATER if p in m), None)


def features(measures: Mapping[str, PhaseMeasure]) -> list[Feature]:
    """LI-RADS-style features from per-phase measurements (keys: ``arterial``, ``portal-venous``,
    ``delayed``, ``non-contrast``; other phase names are ignored). HU in each Feature = the deciding difference."""
    a, later = measures.get("arterial"), _later(measures)
    out: list[Feature] = []
    # arterial-phase hyperenhancement: lesion mean ≥ liver + MARGIN in the arterial phase
    aphe = None
    if a is None:
        out.append(_need("aphe", "an arterial phase"))
    else:
        diff = a.lesion_hu - a.liver_hu
        aphe = diff >= MARGIN_HU
        out.append(Feature("aphe", aphe, diff, f"arterial lesion − liver = {diff:+.0f} HU (≥ {MARGIN_HU:+.0f} = APHE)"))
    # washout: after APHE, portal-venous / delayed lesion mean ≤ liver − MARGIN
    if a is None or later is None:
        out.append(_need("washout", "arterial and portal-venous/delayed phases"))
    else:
        diff = later.lesion_hu - later.liver_hu
        if not aphe:
            out.append(Feature("washout", False, diff, "no arterial hyperenhancement to wash out"))
        else:
            out.append(Feature("washout", diff <= -MARGIN_HU, diff,
                               f"{later.phase} lesion − liver = {diff:+.0f} HU (≤ {-MARGIN_HU:+.0f} = washout)"))
    # enhancing capsule: later-phase rim ≥ liver + MARGIN around a core ≤ liver − MARGIN
    if later is None:
        out.append(_need("enhancing_capsule", "a portal-venous or delayed phase"))
    else:
        rim, core = later.rim_hu - later.liver_hu, later.core_hu - later.liver_hu
        out.append(Feature("enhancing_capsule", rim >= MARGIN_HU and core <= -MARGIN_HU, rim,
                           f"{later.phase} rim − liver {rim:+.0f} HU, core − liver {core:+.0f} HU"))
    out.append(_water(measures))
    # peripheral nodular enhancement: arterial rim discontinuous, bright nodules, dark core
    missing = _no_arterial_rim("peripheral_nodular_enhancement", a, "rim_spread_hu")
    if missing:
        out.append(missing)
    else:
        spread, peak = a.rim_spread_hu, a.rim_peak_hu - a.liver_hu
        core = a.core_hu - a.liver_hu
        yes = spread >= NODULAR_SPREAD_HU and peak >= NODULE_ABOVE_LIVER_HU and core <= -MARGIN_HU
        out.append(Feature("peripheral_nodular_enhancement", yes, peak,
                           f"arterial rim sectors spread {spread:.0f} HU, brightest − liver {peak:+.0f} HU, "
                           f"core − liver {core:+.0f} HU"))
    # centripetal fill-in: core gains ≥ MARGIN from arterial to later and the lesion reaches ≈ liver or above
    if a is None or later is None:
        out.append(_need("centripetal_fill_in", "arterial and portal-venous/delayed phases"))
    else:
        gain, level = later.core_hu - a.core_hu, later.lesion_hu - later.liver_hu
        out.append(Feature("centripetal_fill_in", gain >= MARGIN_HU and level >= -MARGIN_HU, gain,
                           f"core gains {gain:+.0f} HU to {later.phase}, lesion − liver there {level:+.0f} HU"))
    # rim enhancement: arterial rim ≥ core + MARGIN all round (continuous), not nodular
    nodular = out[-2].present
    missing = _no_arterial_rim("rim_enhancement", a, "rim_continuity")
    if missing:
        out.append(missing)
    else:
        diff, share = a.rim_hu - a.core_hu, a.rim_continuity
        above = a.rim_hu - a.liver_hu  # partial volume between a dark core and the liver stays below the liver
        yes = diff >= MARGIN_HU and above >= -MARGIN_HU and share >= CONTINUOUS_RIM and not nodular and not aphe
        out.append(Feature("rim_enhancement", yes, diff,
                           f"arterial rim − core {diff:+.0f} HU in {share:.0%} of the rim, rim − liver {above:+.0f} HU, "
                           f"nodular {bool(nodular)}, APHE {bool(aphe)}"))
    # progressive peripheral enhancement: the core gains ≥ MARGIN from arterial to later, and later the rim is
    # ≥ core + MARGIN and ≥ liver − 2 MARGIN (enhancing, not partial volume) while the lesion stays ≤ liver − MARGIN
    if a is None or later is None:
        out.append(_need("progressive_peripheral_enhancement", "arterial and portal-venous/delayed phases"))
    else:
        gain = later.core_hu - a.core_hu
        diff, level, rim = later.rim_hu - later.core_hu, later.lesion_hu - later.liver_hu, later.rim_hu - later.liver_hu
        yes = gain >= MARGIN_HU and diff >= MARGIN_HU and level <= -MARGIN_HU and rim >= -2 * MARGIN_HU
        out.append(Feature("progressive_peripheral_enhancement", yes, diff,
                           f"core gains {gain:+.0f} HU; {later.phase} rim − core {diff:+.0f} HU, "
                           f"rim − liver {rim:+.0f} HU, "
                           f"lesion − liver {level:+.0f} HU"))
    # central scar: arterial centre ≥ SCAR_BELOW_LESION_HU darker than the (hyperenhancing) lesion
    if a is None:
        out.append(_need("central_scar", "an arterial phase"))
    else:
        diff = a.centre_hu - a.lesion_hu
        out.append(Feature("central_scar", bool(aphe) and diff <= -SCAR_BELOW_LESION_HU, diff,
                           f"arterial centre − lesion {diff:+.0f} HU"))
    return out


def _water(measures: Mapping[str, PhaseMeasure]) -> Feature:
    """Water density (core in ``WATER_HU``) in every phase and < ``WATER_CHANGE_HU`` change between phases;
    one contrast phase alone suffices (enhancing tissue is never water-dense on it)."""
    name = "water_density_non_enhancing"
    known = {p: m for p, m in measures.items() if p in ("non-contrast", "arterial") + LATER}
    if not known:
        return _need(name, "a phase of known contrast timing")
    cores = [m.core_hu for m in known.values()]
    water = all(WATER_HU[0] <= c <= WATER_HU[1] for c in cores)
    change = max(cores) - min(cores)
    told = f"core {', '.join(f'{p} {m.core_hu:.0f}' for p, m in known.items())} HU"
    if not water:
        return Feature(name, False, max(cores, key=abs),
                       f"{told}: not water density ({WATER_HU[0]:.0f}…{WATER_HU[1]:.0f} HU)")
    if len(known) == 1 and "non-contrast" in known:
        return Feature(name, None, cores[0], f"{told}: water density, enhancement needs a contrast phase")
    if len(known) == 1:  # no change to measure: a water-dense core on a contrast phase does not enhance
        return Feature(name, True, cores[0], f"{told}: water density on a contrast phase (enhancing tissue is "
                                             "brighter); change between phases not measured (one phase)")
    return Feature(name, change < WATER_CHANGE_HU, cores[0],
                   f"{told}: change {change:.0f} HU (< {WATER_CHANGE_HU:.0f} = non-enhancing)")


@dataclass(frozen=True)
class Evidence:
    """Rule-table evidence: per subtype a score 0..1 (share of required + ½ supporting features present;
    0 when an excluded one is present), the best pattern and the benign/malignant side it belongs to."""

    scores: dict[str, float]
    matched: dict[str, list[str]]
    not_judged: dict[str, list[str]]
    pattern: str | None
    group: str | None
    verdict: str

    def as_dict(self) -> dict:
        return {"scores": {k: round(v, 3) for k, v in self.scores.items()}, "matched": self.matched,
                "not_judged": self.not_judged, "pattern": self.pattern, "benign_malignant": self.group,
                "verdict": self.verdict, "kind": "rule-table evidence from measured features, not a probability",
                "rules": RULE_TABLE_VERSION}


def evidence(found: Sequence[Feature], rules: Sequence[Rule] = RULES) -> Evidence:
    """Score every rule against the features; the pattern is the best full match (all required present, and
    every excluded feature judged absent unless the rule says its required ones rule them out)."""
    by = {f.name: f.present for f in found}
    scores, matched, unjudged = {}, {}, {}
    for r in rules:
        weight = len(r.required) + 0.5 * len(r.supporting)
        got = [n for n in r.required + r.supporting if by.get(n) is True]
        score = (sum(n in r.required for n in got) + 0.5 * sum(n in r.supporting for n in got)) / weight
        if any(by.get(n) is True for n in r.excluded):
            score = 0.0
        scores[r.subtype], matched[r.subtype] = score, got
        unjudged[r.subtype] = [n for n in r.required + r.supporting + r.excluded if by.get(n) is None]
    full = [r for r in rules if scores[r.subtype] > 0 and all(by.get(n) is True for n in r.required)]
    open_ = {r.subtype: [n for n in r.excluded if by.get(n) is None] for r in full if r.excluded_must_be_judged}
    if full and all(open_.get(r.subtype) for r in full):  # e.g. APHE on an arterial phase alone: HCC not excluded
        r = full[0]
        return Evidence(scores, matched, unjudged, None, None,
                        f"indeterminate: {r.subtype} features present ({', '.join(matched[r.subtype])}) but "
                        f"{', '.join(open_[r.subtype])} not judged, which would exclude {r.subtype}")
    full = [r for r in full if not open_.get(r.subtype)]
    if not full:
        missing = sorted({n for r in rules for n in unjudged[r.subtype]})
        why = f"; not judged: {', '.join(missing)}" if missing else ""
        return Evidence(scores, matched, unjudged, None, None, f"indeterminate: no pattern fully matched{why}")
    best = max(full, key=lambda r: (scores[r.subtype], len(r.required)))
    return Evidence(scores, matched, unjudged, best.subtype, best.group,
                    f"{best.group} pattern ({best.subtype}): {', '.join(matched[best.subtype])}")
