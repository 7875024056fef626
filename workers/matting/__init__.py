"""The matting stage: an RGB photo in, the alpha matte of its subject out, at full resolution.

- ``models``: ``Matting``, the ISNet and U²-Net-p networks and their fusion.
- ``sessions``: onnxruntime sessions, cached per process; execution providers chosen there.
- ``closed_form``: the closed-form matting solve in the uncertain band.
- ``foreground``: the subject's own colours where its matte is soft.
- ``evaluation``: SAD, MSE and Grad against ground-truth mattes.
"""

from __future__ import annotations

from workers.matting.foreground import estimate_foreground
from workers.matting.models import Matting

__all__ = ["Matting", "estimate_foreground"]
