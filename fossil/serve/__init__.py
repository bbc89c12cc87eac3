"""``fossil serve``: segmentation and references over HTTP, with a static page.

:mod:`fossil.serve.service` answers the API's calls from a read session
(:class:`fossil.pipeline.session.ReadSession`: the collection, the models, the query engines
and analysers);
:mod:`fossil.serve.app` maps it to FastAPI routes (needs the ``serve`` extra), behind the
checks of :mod:`fossil.serve.guards` (Host names, no local paths in answers);
``static/`` is the page (plain HTML/JS/CSS, no build step, nothing fetched from elsewhere).
"""
