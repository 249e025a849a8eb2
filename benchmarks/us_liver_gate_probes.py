"""us-liver gate on every AUL frame as read (which checks flag, seconds a frame) and on ALTERED copies of every 4th
lesion frame with two caliper marks drawn as scanners draw them (frames flagged, marks found), PNG and JPEG q90; ALTERED
copies of every 8th lesion frame with a body-marker icon over the lesion (icon flagged); an ALTERED 20-frame RGB US
DICOM cine of 20 real 1024x768 frames (gate seconds a frame).

Usage: OMP_NUM_THREADS=1 python benchmarks/us_liver_gate_probes.py DATA [STEP]   (session 10, 2026-12-06)"""
import collections, csv, random, sys, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lesiondx.data import mask_box
from lesiondx.gate import check
from lesiondx.io import read_image

COLOURS = {"white": (255, 255, 255), "yellow": (255, 255, 0), "green": (0, 255, 0), "cyan": (0, 255, 255)}


def draw_marks(img, ends, shape, colour, arm, stroke):
    """ALTERED: two '+' / 'x' marks at ``ends``, a dotted line between them, a 'D1 2.31 cm' label bottom left."""
    d, fill = ImageDraw.Draw(img), COLOURS[colour]
    (x1, y1), (x2, y2) = ends
    n = max(2, int(np.hypot(x2 - x1, y2 - y1) // 6))
    for t in np.linspace(0, 1, n + 1)[1:-1]:
        px, py = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
        if min(np.hypot(px - x1, py - y1), np.hypot(px - x2, py - y2)) > arm + 4:
            d.rectangle([px, py, px + 1, py + 1], fill=fill)
    for x, y in ends:
        a = arm if shape == "+" else int(round(arm / 2 ** 0.5))
        lines = [((x - a, y), (x + a, y)), ((x, y - a), (x, y + a))] if shape == "+" else \
            [((x - a, y - a), (x + a, y + a)), ((x - a, y + a), (x + a, y - a))]
        for line in lines:
            d.line(line, fill=fill, width=stroke)
    d.text((20, img.height - 40), "D1 2.31 cm", fill=fill)


root, step = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4
rows = list(csv.DictReader(open(root / "labels.csv")))
flags, secs = collections.Counter(), []
for r in rows:
    image = read_image(root / r["image"])
    t0 = time.perf_counter()
    verdict = check("us-liver", image)
    secs.append(time.perf_counter() - t0)
    flags.update(name for name, c in verdict.checks.items() if c["status"] != "ok")
print(f"AUL frames as read: {len(rows)}; flagged by check: {dict(flags)}; gate s/frame median {np.median(secs):.3f} "
      f"p90 {np.quantile(secs, .9):.3f}")
rng, found = random.Random(0), collections.Counter()
with tempfile.TemporaryDirectory() as tmp:
    for r in [r for r in rows if r["label"] in ("benign", "malignant")][::step]:
        shape, colour = rng.choice("+x"), rng.choice(list(COLOURS))
        arm, stroke, where = rng.randint(5, 10), rng.choice((1, 2)), rng.choice(("ends", "beside"))
        img = Image.open(root / r["image"]).convert("RGB")
        box = mask_box(np.asarray(Image.open(root / r["lesion_mask"]).convert("L")) > 127)
        cy = (box.y1 + box.y2) // 2
        ends = [(box.x1, cy), (box.x2 - 1, cy)] if where == "ends" else \
            [(max(5, box.x1 - 12), box.y1 - 6), (box.x2 + 10, box.y2 + 6)]
        draw_marks(img, ends, shape, colour, arm, stroke)
        for suffix in (".png", ".jpg"):
            path = Path(tmp) / f"{r['image_id']}_ALTERED{suffix}"
            img.save(path, **({"quality": 90} if suffix == ".jpg" else {}))
            status = check("us-liver", read_image(path)).checks["marks"]["status"]
            found[suffix, "frames"] += 1
            found[suffix, "flagged"] += status == "flagged"
print("ALTERED frames with drawn marks, flagged:", {s: f"{found[s, 'flagged']} of {found[s, 'frames']}" for s in (".png", ".jpg")})


def draw_icon(img, cx, cy, colour=(255, 255, 255)):
    """ALTERED: a 45x35 px torso outline, a liver outline inside it and a 3-px probe bar centred at (cx, cy)."""
    d = ImageDraw.Draw(img)
    d.ellipse([cx - 22, cy - 17, cx + 22, cy + 17], outline=colour, width=1)
    d.polygon([(cx - 14, cy - 8), (cx + 2, cy - 10), (cx - 2, cy + 4), (cx - 14, cy + 2)], outline=colour)
    d.line([(cx + 6, cy + 10), (cx + 18, cy - 2)], fill=colour, width=3)


icons = collections.Counter()
with tempfile.TemporaryDirectory() as tmp:
    for r in [r for r in rows if r["label"] in ("benign", "malignant")][::8]:
        img = Image.open(root / r["image"]).convert("RGB")
        box = mask_box(np.asarray(Image.open(root / r["lesion_mask"]).convert("L")) > 127)
        draw_icon(img, (box.x1 + box.x2) // 2, (box.y1 + box.y2) // 2)
        for suffix in (".png", ".jpg"):
            path = Path(tmp) / f"{r['image_id']}_icon_ALTERED{suffix}"
            img.save(path, **({"quality": 90} if suffix == ".jpg" else {}))
            icons[suffix, "frames"] += 1
            icons[suffix, "flagged"] += check("us-liver", read_image(path)).checks["icon"]["status"] == "flagged"
    print("ALTERED frames with a body-marker icon over the lesion, flagged:",
          {s: f"{icons[s, 'flagged']} of {icons[s, 'frames']}" for s in (".png", ".jpg")})
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "io"))
    from us_dicom_kinds import _base, _rgb

    clip = [np.asarray(Image.open(root / r["image"]).convert("RGB")) for r in rows
            if Image.open(root / r["image"]).size == (1024, 768)][:20]
    path = Path(tmp) / "clip20_ALTERED.dcm"
    _rgb(_base(768, 1024, frames=len(clip)), np.stack(clip)).save_as(path, enforce_file_format=True)
    image = read_image(path)
    secs = []
    for _ in range(3):
        t0 = time.perf_counter()
        verdict = check("us-liver", image)
        secs.append(time.perf_counter() - t0)
    print(f"ALTERED {len(clip)}-frame cine of real frames: gate {min(secs) / len(clip):.3f} s a frame (best of 3), "
          f"{verdict.status}")
