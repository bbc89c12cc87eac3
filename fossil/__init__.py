"""fossil: training-free open-vocabulary semantic segmentation through synthetic
references retrieval (FOSSIL, Barsellotti et al.).

Importing :mod:`fossil` is cheap: heavy libraries (torch, diffusers, qdrant) are imported
by the submodules that need them.
"""

__version__ = "0.1.0"
