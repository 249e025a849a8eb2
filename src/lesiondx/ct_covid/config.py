"""Configuration of the ct-covid task (defaults here; override from YAML/TOML)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lesiondx.config import load_config
from lesiondx.io import Window, apply_window


@dataclass(frozen=True)
class CovidConfig:
    """Everything that shapes training and inference of the ct-covid task.

    Window: ``window_center``/``window_width`` (HU) turn DICOM into 8-bit grey like the MedSeg
    training slices (measured: lung parenchyma ~-895 HU ↔ grey 44, soft tissue ~35 HU ↔ grey 211).
    Lung field: air below ``lung_threshold_hu``; components smaller than ``lung_min_area`` (fraction
    of the slice) dropped; holes closed with a disk of ``lung_closing`` × slice side.
    Detection: lesion pixels have probability ≥ ``prob_threshold`` inside the lung field; a lesion is a
    connected component of ≥ ``min_area`` pixels at model resolution (``input_size``²) and, when the
    pixel spacing is known, at least the area of a ``min_lesion_diameter_mm`` disk (pneumonia opacities
    are centimetric; vessel cross-sections and partial-volume blips are smaller). The slice score is the
    probability reached by ``min_area`` lung-field pixels.
    Candidate filter: when ``candidate_filter`` names a file in the model folder, each candidate lesion
    whose filter probability (:mod:`.candidates`) is below ``filter_threshold`` is dropped.
    Patient rule: positive when ≥ ``k_consecutive`` consecutive slices hold a lesion in one quadrant.
    Training negatives: every slice of a ``negative_data`` patient whose label is not pneumonia, and the
    slices without ``infection`` of a pneumonia patient, prepared exactly as at inference (window, lung
    crop), train with all-zero masks (``negative_share`` of each batch; relative folders are siblings of the
    training data folder). With negatives, the last epoch is kept (validation Dice sees positives only).
    Label semantics: a patient whose label is one of ``positive_labels`` (case-insensitive) has pneumonia;
    every other label (Normal, lung cancer, anything else) is a negative.
    """

    arch: str = "unetplusplus"
    encoder: str = "efficientnet_lite0"
    input_size: int = 256
    window_center: float = -450.0
    window_width: float = 1400.0
    lung_threshold_hu: float = -400.0
    lung_min_area: float = 0.002
    lung_closing: float = 0.05
    crop_to_lungs: bool = True
    crop_margin: float = 0.06
    prob_threshold: float = 0.5
    min_area: int = 20
    min_lesion_diameter_mm: float = 10.0
    k_consecutive: int = 3
    candidate_filter: str = ""  # file of a CandidateFilter in the model folder ("" = none)
    filter_threshold: float = 0.5  # candidates whose filter probability is below this are not lesions
    positive_labels: tuple[str, ...] = ("COVID-19", "CAP")  # pneumonia-positive patient labels; all others negative
    # training
    epochs: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    max_train_images: int = 0
    scale_range: tuple[float, float] = (0.7, 1.3)
    rotate_degrees: float = 20.0
    negative_data: tuple[str, ...] = ()  # CT-MD-layout folders whose negative slices train as all-zero masks
    exclude_patients: tuple[str, ...] = ()  # patients of negative_data never trained on (leave-one-out)
    negative_share: float = 0.5  # share of each training batch drawn from the negative slices
    init_from: str = ""  # model folder (or "default") to fine-tune from; "" = ImageNet encoder
    seed: int = 0
    threads: int = 1
    infer_batch: int = 8

    def __post_init__(self) -> None:
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, not {self.input_size}")
        if self.k_consecutive < 1:
            raise ValueError(f"k_consecutive must be ≥ 1, not {self.k_consecutive}")
        if not 0.0 < self.prob_threshold < 1.0:
            raise ValueError(f"prob_threshold must lie in (0, 1), not {self.prob_threshold}")
        if self.min_lesion_diameter_mm < 0:
            raise ValueError(f"min_lesion_diameter_mm must be ≥ 0, not {self.min_lesion_diameter_mm}")
        if isinstance(self.positive_labels, str) or not self.positive_labels or not all(isinstance(p, str) and p.strip() for p in self.positive_labels):
            raise ValueError(f"positive_labels must be a non-empty list of label names, not {self.positive_labels!r}")
        if not 0.0 <= self.filter_threshold < 1.0:
            raise ValueError(f"filter_threshold must lie in [0, 1), not {self.filter_threshold}")
        if not 0.0 <= self.negative_share < 1.0:
            raise ValueError(f"negative_share must lie in [0, 1), not {self.negative_share}")
        if self.window_width <= 0:
            raise ValueError(f"window_width must be positive, not {self.window_width}")

    @property
    def rule_text(self) -> str:
        """The patient rule in words (for reports)."""
        kept = (f", kept by the candidate filter at ≥ {self.filter_threshold:g}" if self.candidate_filter else "")
        return (f"a lesion (probability ≥ {self.prob_threshold}, at least a {self.min_lesion_diameter_mm:g} mm disk "
                f"when the pixel spacing is known, else ≥ {self.min_area} px at {self.input_size}²{kept}) in the same "
                f"quadrant on ≥ {self.k_consecutive} consecutive slices")

    def is_positive(self, label: object) -> bool:
        """True when ``label`` is one of ``positive_labels`` (case and surrounding spaces ignored)."""
        return str(label).strip().lower() in {p.strip().lower() for p in self.positive_labels}

    @property
    def window(self) -> Window:
        return Window(self.window_center, self.window_width)

    @property
    def lung_threshold_grey(self) -> float:
        """The lung-air threshold as a grey level (0..255) of the training window."""
        return float(apply_window(self.lung_threshold_hu, self.window))


def read_config(path: str | Path | None = None, **overrides) -> CovidConfig:
    """Defaults, updated from ``path`` (YAML/TOML) and then ``overrides``."""
    return load_config(CovidConfig, path, **overrides)
