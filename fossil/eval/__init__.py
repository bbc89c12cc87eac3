"""Benchmark evaluation (design §9): dataset readers, the mIoU accumulator, reports and a
resumable runner that drives an injected crop predictor through the sliding-window protocol
(:mod:`fossil.segment.window`; fossil's predictor is :mod:`fossil.pipeline`'s).

Import the submodules (``fossil.eval.runner``, ``fossil.eval.datasets`` …); this package
file stays empty so ``import fossil`` is cheap.
"""
