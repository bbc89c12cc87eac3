"""Benchmark evaluation (§9): dataset readers, the TCL / mmseg 0.27 protocol, the mIoU
accumulator, reports and a resumable runner around an injected crop predictor.

Import the submodules (``fossil.eval.runner``, ``fossil.eval.datasets`` …); this package
file stays empty so ``import fossil`` is cheap.
"""
