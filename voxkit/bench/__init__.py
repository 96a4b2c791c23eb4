"""GPU benchmarks of voxkit's fused kernels and what they change end to end.

``python -m voxkit.bench.kernels`` checks every kernel against a float64 reference, times each op
next to its peers (F.rms_norm, torch.compile, eager PyTorch, Liger-Kernel when installed) and
measures a training step, batch-1 decode and live Realtime streams, in one run of a few minutes.
``--device cpu --quick`` runs the same sections at tiny sizes, which is how the tests exercise it.
"""
