"""Ultrasound focal-liver-lesion diagnosis (DCNN-US, issue 4): benign vs malignant on B-mode frames.

Modules: ``config`` (UsLiverConfig), ``rois`` (fixed-scale crops, factors), ``segment`` (lesion/
liver/sector U-Net proposing ROIs), ``model`` (Model_L / Model_LB, triplet loss), ``cache`` (trunk
features), ``train`` (CV training, size-and-scanner baseline), ``lbc`` (Model_LBC fusion + nomogram),
``inference`` (bundle, Grad-CAM), ``task`` (train/evaluate/predict), ``benchmark`` (CV study).
"""
