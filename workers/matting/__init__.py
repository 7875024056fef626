"""The matting stage: an RGB photo in, the alpha matte of its subject out, at full resolution.

- ``models``: ``Matting``, the ISNet and U²-Net-p networks and their fusion.
- ``sessions``: onnxruntime sessions, cached per process; execution providers chosen there.
- ``refine``: the model's alpha to full resolution: upsampled, doubt decided, edges re-solved.
- ``doubt``: wide regions of mid alpha decided for the subject or the background by colour.
- ``upsample``: edge-aware (guided-filter) upsampling of a low-resolution alpha.
- ``closed_form``: the closed-form matting solve in the alpha's uncertain band.
- ``covariance``: the per-pixel 3×3 colour covariance algebra the last two share.
- ``foreground``: the subject's own colours where its matte is soft.
- ``confidence``: a matte's confidence in 0..1 and its review flag, from run-time signals.
- ``evaluation``: SAD, MSE and Grad against ground-truth mattes, and how confidence ranks them.
"""

from __future__ import annotations

from workers.matting.foreground import estimate_foreground
from workers.matting.models import Matting

__all__ = ["Matting", "estimate_foreground"]
