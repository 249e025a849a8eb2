"""lesiondx: a second opinion on medical images, with the statistics to check it.

Packages: ``io`` (images, DICOM), ``data`` (manifests, splits, ROIs), ``stats`` (clinical-study
statistics), ``models`` (shared network blocks), one package per task (``us_liver``, ``ct_liver``,
``ct_covid``) and ``service`` (API, worker, DICOM node, web).
"""

__version__ = "0.1.0"
