"""The targets the findings check, and the confidence of the honest-flag bound."""

from __future__ import annotations

CONFIDENCE = 0.95  # of the one-sided upper bound on the honest-flag rate
DETECTED = ("sign_flip", "noise", "label_flip")  # on IID data: every attacker flagged ...
DETECTION_EPOCHS = 3  # ... within this many epochs
TARGET_ALPHA = 0.5  # the non-IID split the accuracy targets are set on
KEPT_CLOSE = ("sign_flip", "noise", "label_flip", "free_rider")  # with NNM, within ...
TARGET_POINTS = 5.0  # ... this many points of the clean run
CRAFTED = ("alie", "ipm", "alie_opt", "ipm_opt")  # NNM's damage at most half of Multi-Krum's
MOVED_LITTLE = ("free_rider", "ipm")  # the attacks a too-little movement flag would be for
NOISE_POINTS = 2.0  # a drop below this is within the seeds' spread: nothing to halve
