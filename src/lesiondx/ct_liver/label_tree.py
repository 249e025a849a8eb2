"""A two-level label tree (benign/malignant → lesion types) and set-valued targets for training.

Lesions labelled only at the top level (``malignant``) are trained against the *set* of leaves under
that node (marginal likelihood); when every label is top-level the model is trained at that level only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelTree:
    """``parents`` maps each top-level class to its leaf classes, e.g. ``{"malignant": ("HCC", "ICC", "MET")}``."""

    parents: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Sequence[str]]) -> "LabelTree":
        """Build and validate a tree (unique names, no leaf equal to a top-level name, ≥ 2 top classes)."""
        if len(mapping) < 2:
            raise ValueError(f"label tree needs at least two top-level classes, got {list(mapping)}")
        parents = tuple((str(top), tuple(str(leaf) for leaf in leaves)) for top, leaves in mapping.items())
        names = [top for top, _ in parents] + [leaf for _, leaves in parents for leaf in leaves]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"label tree repeats class name(s) {dupes}")
        return cls(parents)

    @property
    def top(self) -> tuple[str, ...]:
        return tuple(top for top, _ in self.parents)

    @property
    def leaves(self) -> tuple[str, ...]:
        return tuple(leaf for _, leaves in self.parents for leaf in leaves)

    def parent_of(self, leaf: str) -> str:
        for top, leaves in self.parents:
            if leaf in leaves:
                return top
        raise KeyError(f"{leaf!r} is not a leaf of the label tree (leaves: {', '.join(self.leaves)})")

    def level_for(self, labels: Sequence[str]) -> str:
        """``"top"`` when no label names a leaf (train only that level), else ``"leaf"``.

        Raises ``ValueError`` naming labels that are in neither level.
        """
        known = set(self.top) | set(self.leaves)
        unknown = sorted({str(v) for v in labels} - known)
        if unknown:
            raise ValueError(f"label(s) {unknown} are not in the label tree ({', '.join(sorted(known))})")
        return "leaf" if any(str(v) in self.leaves for v in labels) else "top"

    def classes(self, level: str) -> tuple[str, ...]:
        if level not in ("top", "leaf"):
            raise ValueError(f"level must be 'top' or 'leaf', not {level!r}")
        return self.top if level == "top" else self.leaves

    def allowed(self, labels: Sequence[str], level: str) -> np.ndarray:
        """Boolean ``(n, n_classes)``: the classes each label is compatible with at ``level``.

        At leaf level a top-level label allows all its leaves; at top level a leaf allows its parent.
        """
        classes = self.classes(level)
        out = np.zeros((len(labels), len(classes)), dtype=bool)
        for row, label in enumerate(map(str, labels)):
            if label in classes:
                out[row, classes.index(label)] = True
            elif level == "leaf" and label in self.top:
                for leaf in dict(self.parents)[label]:
                    out[row, classes.index(leaf)] = True
            elif level == "top" and label in self.leaves:
                out[row, classes.index(self.parent_of(label))] = True
            else:
                raise ValueError(f"label {label!r} is not in the label tree")
        return out

    def top_probabilities(self, probs: np.ndarray, level: str) -> np.ndarray:
        """``(n, n_top)`` top-level probabilities from ``(n, n_classes)`` probabilities at ``level``."""
        probs = np.asarray(probs, dtype=float)
        if level == "top":
            return probs
        leaves = self.leaves
        return np.stack([probs[:, [leaves.index(l) for l in ls]].sum(axis=1) for _, ls in self.parents], axis=1)

    def describe(self, probs: np.ndarray, level: str) -> list[dict[str, float]]:
        """Per row ``{class: p}`` for the top level and, when trained, the leaves."""
        top = self.top_probabilities(probs, level)
        rows = []
        for i in range(top.shape[0]):
            row = {name: float(top[i, j]) for j, name in enumerate(self.top)}
            if level == "leaf":
                row.update({name: float(probs[i, j]) for j, name in enumerate(self.leaves)})
            rows.append(row)
        return rows
