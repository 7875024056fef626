"""Optical lens blur ("bokeh") of a photo's background behind its matted subject.

``render_bokeh(rgb, alpha, *, strength, ...) -> rgb`` is the stage; its modules, in reading order:

- ``render``: the entry point: input contract, linear light, the final composite.
- ``background``: the blurred background B, step by step.
- ``behind``: the background behind each pixel, where the matte is partial too.
- ``highlights``: the highlight boost of small clipped lights.
- ``layers``: the blurred layers on their reduced grids: blur, blend by radius, fill.
- ``lights``: the point lights, found and taken out of the layers.
- ``discs``: each point light drawn once, as the aperture's shape at its own radius.
- ``enlarge``: reduced grids read at full size, only where needed.
- ``aperture``: the aperture (disc or N blades) as a kernel, and the convolution with it.
- ``depth``: depth maps given with a photo, and the proxy used without one.

Method, all in linear light:

1. Decode sRGB with the exact transfer curve (``workers.colour``) and boost clipped highlights
   (max channel over 250) in dark surroundings, so that a blown light carries the energy it
   really had and blurs into a bright disc; a large bright area (a wall, a sky) is not boosted
   and keeps its brightness.
2. Estimate the background behind every pixel and blur it with the aperture (an anti-aliased
   disc, or a polygon of N blades) as a normalised convolution, ``B = conv(B·w, K) / conv(w, K)``.
   Surely-background pixels count fully, the subject (``alpha >= 1/4``) not at all, so its colour
   never enters ``B`` and there is no halo; where the kernel sees no background (inside a large
   subject) a push-pull pyramid fills ``B`` from around it. Where that fill cannot explain the
   photo under a partial matte (a dark area given alpha = 0.4 in a light scene), the background
   behind is ``(I − α·F)/(1 − α)`` with weight ``1 − α``, which composites back to the photo.
3. Blur grows with distance behind the subject. The radius of a pixel is ``depth * R_inf``, where
   ``depth`` is the given map, or else a proxy from the distance to the subject: 0.4 right next to
   it, rising to 1 (infinity) at a quarter of the long side. A few layers of increasing radius are
   rendered and blended per pixel by linear interpolation on the radius.
4. Each layer is rendered at reduced resolution so that its kernel radius there is 8 px (never
   over 1 MP), then upsampled, so the cost stays flat as the blur grows. A cell of such a grid
   spans R/8 px or more, and a pixel between two layer radii mixes two blurs: texture shows
   neither, but point lights would, bright spots (max channel >= 230) no wider than the widest
   disc's radius, which a lens draws as one disc with a crisp rim at the light's own radius. So
   they are taken out of every layer (``lights``) and each is drawn once, at the radius of its own
   depth, at full resolution (``discs``; a light 8 px wide or more on cells of about a quarter of
   its width, since its own width blurs its rim anyway), and added to the blurred background as
   it is, not normalised: the subject and the frame cut its disc. The layers, then holding texture
   only, are rendered with a kernel radius of 4 cells, on grids up to four times smaller. This
   while the point lights are few: at most 2 % of the pixels, and no more (the smallest first)
   than drawing costs in proportion to the photo's size; the rest, and larger bright areas (a
   sky, a white wall), stay in the layers, where a soft edge does not show. Background at a
   radius the layer grid cannot resolve fades to the sharp image.
5. Composite ``alpha*F + (1-alpha)*B`` and encode to sRGB with a 16-bit LUT; the decode/encode
   round trip is exact for every byte, so pixels with alpha = 1 come out unchanged.

Strength 1..100 sets the radius of a background at infinity, ``R_inf = strength/100 * 0.045 *
long_side``, so a batch of mixed resolutions looks alike. With ``strength_reference="subject"`` the
long side is replaced by √(subject area)/0.7 (``radius_at_infinity``), so differently cropped
portraits of one sitter look alike. On a full-frame camera, 100 is about an
85 mm lens at f/1.2 focused at 2 m, 30 about 50 mm at f/1.8, and 10 about 35 mm at f/2.
"""

from __future__ import annotations

from workers.bokeh.depth import decode_depth
from workers.bokeh.render import render_bokeh

__all__ = ["decode_depth", "render_bokeh"]
