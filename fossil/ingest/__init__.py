"""Ingest (design §2): caption corpora → references in the collection.

:mod:`~fossil.ingest.corpora` reads caption files, :mod:`~fossil.ingest.worker` turns leased
captions into references and writes them in the design §4 order, :mod:`~fossil.ingest.pool` runs
several generator processes for one writer, :mod:`~fossil.ingest.thumbnails` keeps a small
picture of each reference.  Kept light: importing :mod:`fossil.ingest` loads nothing heavy.

A whole run — registration, claiming, processing, writing, lease hand-back and the query
side's lemma index — is one call, :func:`fossil.pipeline.ingest_corpora`: it sits one layer
up because the lemma index belongs to :mod:`fossil.query`, which this package may not import.
"""
