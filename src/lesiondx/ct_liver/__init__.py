"""Liver CT lesions (issue 7): candidate/learned detector, liver filter, LiLNet classifier, label tree,
multiphase aggregation. The task entry points live in :mod:`lesiondx.ct_liver.task`."""

from .config import CtLiverConfig
from .label_tree import LabelTree

__all__ = ["CtLiverConfig", "LabelTree"]
