"""``fossil serve``: segmentation and references over HTTP, with a static page.

:mod:`fossil.serve.service` holds the collection and models and calls the library
(:func:`fossil.pipeline.segment_image`, :class:`fossil.query.QueryEngine`);
:mod:`fossil.serve.app` maps it to FastAPI routes (needs the ``serve`` extra), behind the
checks of :mod:`fossil.serve.guards` (Host names, no local paths in answers);
``static/`` is the page (plain HTML/JS/CSS, no build step, nothing fetched from elsewhere).
"""
