"""Adapters for the shared dataset layouts, recognised by their columns (never by folder name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


def _identity(frame: pd.DataFrame, root: Path) -> pd.DataFrame:
    return frame


def _int_column(name: str) -> Callable[[pd.DataFrame, Path], pd.DataFrame]:
    def normalise(frame: pd.DataFrame, root: Path) -> pd.DataFrame:
        if name in frame.columns:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").fillna(0).astype(int)
        return frame

    return normalise


@dataclass(frozen=True)
class DatasetLayout:
    """What a dataset folder holds and how its labels read.

    Attributes:
        name: layout id (``aul_liver_us``, ``covid_ct_md``, ``covid_medseg``, ``ircadb_liver_ct``, ``generic``).
        modality: ``US`` or ``CT`` (``OT`` when unknown).
        task: the lesiondx task that uses it (``us-liver``, ``ct-covid``, ``ct-liver``) or ``None``.
        positive: label values counted positive for the binary endpoint.
        negative: label values counted negative (others, e.g. AUL ``normal``, are reported apart).
        slice_truth: column holding a per-slice 0/1 truth, if any.
        lesion_mask_is_label_map: lesion masks hold k for lesion k (IRCADb) rather than 0/255.
    """

    name: str
    modality: str
    task: str | None
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    slice_truth: str | None = None
    lesion_mask_is_label_map: bool = False
    matches: Callable[[set[str]], bool] = lambda columns: False
    normalise: Callable[[pd.DataFrame, Path], pd.DataFrame] = _identity


LAYOUTS: tuple[DatasetLayout, ...] = (
    DatasetLayout(
        name="aul_liver_us", modality="US", task="us-liver", positive=("malignant",), negative=("benign",),
        matches=lambda c: "sector_mask" in c or ({"lesion_mask", "liver_mask"} <= c and "slice_index" not in c),
    ),
    DatasetLayout(
        name="covid_ct_md", modality="CT", task="ct-covid", positive=("COVID-19", "CAP"), negative=("Normal",),
        slice_truth="infection", matches=lambda c: {"infection", "slice_index"} <= c and "infection_mask" not in c,
        normalise=_int_column("infection"),
    ),
    DatasetLayout(
        name="covid_medseg", modality="CT", task="ct-covid", positive=("infection",),
        matches=lambda c: "infection_mask" in c,
    ),
    DatasetLayout(
        name="ircadb_liver_ct", modality="CT", task="ct-liver", positive=("liver lesion",), negative=("none",),
        lesion_mask_is_label_map=True, matches=lambda c: {"liver_mask", "lesion_mask", "slice_index"} <= c,
    ),
)
GENERIC = DatasetLayout(name="generic", modality="OT", task=None)


def detect_layout(frame: pd.DataFrame, root: Path) -> DatasetLayout:
    """The first layout whose column signature matches, else :data:`GENERIC`."""
    columns = set(frame.columns)
    for layout in LAYOUTS:
        if layout.matches(columns):
            return layout
    return GENERIC


def read_lesion_table(root: str | Path) -> pd.DataFrame | None:
    """The per-lesion table (``lesions.csv``: patient_id, lesion_value, kind, inside_liver...) if present."""
    path = Path(root) / "lesions.csv"
    return pd.read_csv(path) if path.is_file() else None
