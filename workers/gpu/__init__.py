"""The GPU path: the image stages written once against an array namespace.

The same code runs on CuPy arrays on an NVIDIA GPU and on NumPy arrays on the CPU, where the test
suite compares it with the OpenCV stages (the CPU default). ``backend`` chooses the namespace, in
one place, as ``workers.matting.sessions.providers`` chooses the ONNX execution provider. What is
left on the host, stage by stage, is in docs/gpu.md. In reading order:

- ``render``: the middle of the pipeline on the backend: foreground, then bokeh or a cut-out.
- ``matting``: ``DeviceMatting``: the networks (I/O binding), fusion, refinement on the device.
- ``upsample``, ``closed_form``: the guided upsampling and the closed-form solve it refines with.
- ``foreground``: the subject's colours where its matte is soft (blur fusion).
- ``bokeh``: the lens blur's entry point; ``background``, ``behind``, ``layers``, ``lights`` and
  ``discs`` port ``workers.bokeh``'s modules of the same names.
- ``backend``: ``Backend`` (the namespace, its ndimage, FFT and sparse modules, host/device
  copies) and ``choose``.
- ``resample``, ``filters``, ``colour``: OpenCV's resizing and lookup tables, box means and FFT
  convolution, and sRGB ↔ linear, as the OpenCV path computes them.
- ``placement``: ``blurq worker --gpu``: worker processes per GPU. ``failures``: which errors
  mean the GPU failed (the task requeues the image and ends its process).
"""
