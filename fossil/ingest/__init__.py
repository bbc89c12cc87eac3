"""Ingest (§2): caption corpora → references in the collection.

:mod:`~fossil.ingest.corpora` reads caption files, :mod:`~fossil.ingest.worker` turns leased
captions into references and writes them in the §4 order, :mod:`~fossil.ingest.pool` runs
several generator processes for one writer, :mod:`~fossil.ingest.thumbnails` keeps a small
picture of each reference.  Kept light: importing :mod:`fossil.ingest` loads nothing heavy.
"""
