"""Reference store over qdrant-client (design §4, §7): a Qdrant server or cluster for scale-out, or
qdrant-client's in-process modes (``":memory:"``, ``path=``) for tests and small sets.

Server collection (design §7): ``text`` cosine with HNSW and int8 scalar quantization (kept in RAM,
searches rescore with the original vectors); ``visual`` Dot (raw VREs), on disk, no HNSW graph
(``m=0``); keyword payload indexes on ``noun_lemma`` and ``corpus``.  The collection is
created idempotently: an existing one is checked (vector names and sizes) and reused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.local.qdrant_local import QdrantLocal

from fossil.db.points import (
    INDEXED_KEYS,
    TEXT,
    VISUAL,
    check_dims,
    check_lemmas,
    check_query,
    gather_vectors,
    point_payload,
    point_vectors,
    query_filter,
)
from fossil.records import Hit, ReferencePoint

logger = logging.getLogger(__name__)

UPSERT_CHUNK = 256
RETRIEVE_CHUNK = 1024
QUERY_CHUNK = 64  # queries per batch request (a server caps request sizes)


def collection_config(text_dim: int, visual_dim: int) -> dict[str, qm.VectorParams]:
    """Named vectors of design §7: ``text`` HNSW + int8, ``visual`` raw on disk without a graph."""
    return {
        TEXT: qm.VectorParams(
            size=text_dim,
            distance=qm.Distance.COSINE,
            quantization_config=qm.ScalarQuantization(
                scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, always_ram=True)
            ),
        ),
        VISUAL: qm.VectorParams(
            size=visual_dim,
            distance=qm.Distance.DOT,
            on_disk=True,
            hnsw_config=qm.HnswConfigDiff(m=0),
        ),
    }


class ServerStore:
    """:class:`~fossil.db.protocols.ReferenceStore` on a qdrant-client ``client``.

    Creates ``collection`` when missing and ``create`` (``shard_number``,
    ``replication_factor`` apply then).  ``exact`` forces exact search (default: HNSW with
    rescoring, ``hnsw_ef`` candidates).
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        *,
        text_dim: int,
        visual_dim: int,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        exact: bool = False,
        hnsw_ef: int | None = None,
        create: bool = True,
    ) -> None:
        check_dims(text_dim, visual_dim)
        self.client = client
        self.collection = collection
        self.text_dim, self.visual_dim = text_dim, visual_dim
        # qdrant-client's in-process modes search exactly and ignore indexes (they warn)
        self.local = isinstance(getattr(client, "_client", None), QdrantLocal)
        self._params = None
        if not self.local:
            self._params = qm.SearchParams(
                exact=exact,
                hnsw_ef=hnsw_ef,
                quantization=qm.QuantizationSearchParams(rescore=True),
            )
        if client.collection_exists(collection):
            self._check_existing()
        elif not create:
            raise FileNotFoundError(
                f"collection {collection!r} does not exist on this Qdrant: create it "
                "(ingest with create), or check the URL and collection name"
            )
        else:
            client.create_collection(
                collection,
                vectors_config=collection_config(text_dim, visual_dim),
                shard_number=shard_number,
                replication_factor=replication_factor,
            )
            logger.info("created collection %r", collection)
        for key in () if self.local else INDEXED_KEYS:  # idempotent on a server
            client.create_payload_index(collection, key, qm.PayloadSchemaType.KEYWORD)

    @classmethod
    def connect(
        cls, url: str, collection: str, *, api_key: str | None = None, **kwargs: Any
    ) -> ServerStore:
        """``url``: ``http(s)://host:port``, or ``:memory:`` for an in-process store."""
        client = (
            QdrantClient(":memory:") if url == ":memory:" else QdrantClient(url, api_key=api_key)
        )
        return cls(client, collection, **kwargs)

    def _check_existing(self) -> None:
        vectors = self.client.get_collection(self.collection).config.params.vectors
        sizes = {name: params.size for name, params in (vectors or {}).items()}  # type: ignore[union-attr]
        wanted = {TEXT: self.text_dim, VISUAL: self.visual_dim}
        if sizes != wanted:
            raise ValueError(
                f"collection {self.collection!r} holds vectors {sizes}; this store needs {wanted}"
            )

    # -- writes ---------------------------------------------------------------------------
    def upsert(self, points: Sequence[ReferencePoint]) -> None:
        for start in range(0, len(points), UPSERT_CHUNK):
            chunk = points[start : start + UPSERT_CHUNK]
            text, visual = point_vectors(chunk, self.text_dim, self.visual_dim)
            structs = [
                qm.PointStruct(id=p.id, vector={TEXT: t, VISUAL: v}, payload=point_payload(p))
                for p, t, v in zip(chunk, text.tolist(), visual.tolist(), strict=True)
            ]
            self.client.upsert(self.collection, structs, wait=True)

    def set_corpus(self, ids: Sequence[str], corpus: str) -> None:
        """Set the ``corpus`` payload of the points ``ids``."""
        for start in range(0, len(ids), RETRIEVE_CHUNK):
            chunk: list[Any] = [str(i) for i in ids[start : start + RETRIEVE_CHUNK]]
            self.client.set_payload(self.collection, {"corpus": corpus}, chunk, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), RETRIEVE_CHUNK):
            chunk: list[Any] = [str(i) for i in ids[start : start + RETRIEVE_CHUNK]]
            self.client.delete(self.collection, qm.PointIdsList(points=chunk), wait=True)

    # -- reads ----------------------------------------------------------------------------
    def search(
        self,
        vectors: np.ndarray,
        n: int,
        *,
        exclude_corpora: Sequence[str] = (),
        min_score: float | None = None,
        lemmas: Sequence[Sequence[str]] | None = None,
    ) -> list[list[Hit]]:
        """Top-``n`` cosine on ``text`` per row of ``vectors`` (Q, text_dim), batched;
        hits in descending score order.  ``exclude_corpora``, ``min_score``, ``lemmas``: as
        :meth:`fossil.db.edge.EdgeStore.search`."""
        queries = check_query(vectors, n, self.text_dim)
        routes = check_lemmas(lemmas, len(queries))
        requests: dict[int, qm.QueryRequest] = {}
        for row, q in enumerate(queries.tolist()):
            where = query_filter(qm, exclude_corpora, None if routes is None else routes[row])
            if where is False:
                continue
            requests[row] = qm.QueryRequest(
                query=q,
                using=TEXT,
                limit=int(n),
                filter=where,
                score_threshold=min_score,
                with_payload=True,
                params=self._params,
            )
        out: list[list[Hit]] = [[] for _ in range(len(queries))]
        rows, batch = list(requests), list(requests.values())
        for start in range(0, len(batch), QUERY_CHUNK):
            responses = self.client.query_batch_points(
                self.collection, batch[start : start + QUERY_CHUNK]
            )
            for row, response in zip(rows[start : start + QUERY_CHUNK], responses, strict=True):
                out[row] = [
                    Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points
                ]
        return out

    def fetch_visual(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), visual_dim) float32 raw VREs in the order of ``ids`` (repeats allowed)."""
        return gather_vectors(ids, self.visual_dim, self._vectors(VISUAL), RETRIEVE_CHUNK)

    def fetch_text(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), text_dim) float32 TREs in the order of ``ids`` (repeats allowed)."""
        return gather_vectors(ids, self.text_dim, self._vectors(TEXT), RETRIEVE_CHUNK)

    def _vectors(self, name: str) -> Any:
        def retrieve(chunk: list[str]) -> Iterator[tuple[str, Any]]:
            records = self.client.retrieve(
                self.collection, chunk, with_payload=False, with_vectors=[name]
            )
            for record in records:
                yield str(record.id), record.vector[name]  # type: ignore[index,call-overload]

        return retrieve

    def present(self, ids: Sequence[str]) -> set[str]:
        """The ids of ``ids`` that the collection holds."""
        found: set[str] = set()
        for start in range(0, len(ids), RETRIEVE_CHUNK):
            chunk: list[Any] = [str(i) for i in ids[start : start + RETRIEVE_CHUNK]]
            records = self.client.retrieve(
                self.collection, chunk, with_payload=False, with_vectors=False
            )
            found.update(str(r.id) for r in records)
        return found

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def iter_points(self, batch_size: int = 1024) -> Iterator[ReferencePoint]:
        """Every point with both vectors and payload, ``batch_size`` per scroll."""
        if batch_size < 1:
            raise ValueError(f"batch_size ({batch_size}) must be >= 1")
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                limit=batch_size,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            for r in records:
                vector: dict[str, Any] = r.vector  # type: ignore[assignment]
                yield ReferencePoint(
                    id=str(r.id),
                    text=np.asarray(vector[TEXT], np.float32),
                    visual=np.asarray(vector[VISUAL], np.float32),
                    payload=dict(r.payload or {}),
                )
            if offset is None:
                return

    def close(self) -> None:
        self.client.close()
