"""Exact-output check for speed work on the ct-covid series path: ``dump`` writes every output of reading and
``analyse_series`` (pixels, model inputs, lung fields, probabilities, boxes, decision, score) for the given series
folders to a pickle; ``compare`` reports each field that differs between two dumps (bit-for-bit).

Usage: ``python scripts/covid_equality.py dump OUT.pkl SERIES...`` then ``... compare OLD.pkl NEW.pkl``.
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lesiondx.ct_covid.model import load_model
from lesiondx.ct_covid.pipeline import analyse_series, prepare_inputs
from lesiondx.io import read_study


def dump(out: Path, folders: list[str]) -> None:
    loaded = load_model("default", engine="onnx")
    record: dict[str, Any] = {}
    for folder in folders:
        image = read_study(folder)
        prepared = prepare_inputs(image.pixels, loaded.config, is_hu=image.is_hu)
        result = analyse_series(image.pixels, loaded, is_hu=image.is_hu, spacing=image.spacing,
                                orientation=image.orientation, slice_positions_mm=image.positions)
        record[folder] = {
            "pixels": image.pixels, "spacing": image.spacing, "positions": image.positions,
            "orientation": image.orientation, "is_hu": image.is_hu,
            **{f"prepared.{k}": v for k, v in dataclasses.asdict(prepared).items() if k != "timings"},
            "probs": result.probs, "slices": [s.to_dict() for s in result.slices], "patient": result.patient.to_dict(),
            "crop": result.crop, "min_area_px": result.min_lesion_area_px, "location": result.location,
            "frame": result.frame,
        }
        print(folder, result.patient, {k: round(v, 2) for k, v in result.timings.items()}, flush=True)
    out.write_bytes(pickle.dumps(record))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    return repr(a) == repr(b)


def compare(old: Path, new: Path) -> int:
    a, b = pickle.loads(old.read_bytes()), pickle.loads(new.read_bytes())
    bad = 0
    for folder in a:
        for key in a[folder]:
            ok = _same(a[folder][key], b[folder][key])
            bad += not ok
            print(f"{'same' if ok else 'DIFFERS'}  {folder}  {key}")
    print("all identical" if not bad else f"{bad} field(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(Path(sys.argv[2]), sys.argv[3:])
    else:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
