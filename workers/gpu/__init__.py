"""The GPU path: the image stages written once against an array namespace.

The same code runs on CuPy arrays on an NVIDIA GPU and on NumPy arrays on the CPU, where the test
suite compares it with the OpenCV stages (the CPU default). ``backend`` chooses the namespace, in
one place, as ``workers.matting.sessions.providers`` chooses the ONNX execution provider.

- ``backend``: ``Backend`` (the namespace, its ndimage and FFT, host/device copies) and ``choose``.
- ``resample``: resizing as OpenCV's area and bilinear interpolation do, and lookup tables.
- ``filters``: box means with OpenCV's borders, and FFT convolution with a zero border.
"""
