"""Memory k-NN at scale: recall@10 against exact search, latency, insert throughput, index build.

    python bench/memory_search.py                 # 100k rows
    python bench/memory_search.py --rows 1000000  # the 1M run (about 1.6 GB of vectors in RAM)
    python bench/memory_search.py --rows 20000 --queries 5 --json  # the smallest run; JSON last line

It runs against its own database (`agentplatform_bench_memory` on the same server as
DATABASE_URL, or the embedded one; created and migrated here), never the platform's data.

Data: 384-d unit vectors (EMBEDDING_DIMENSIONS). `--distribution`:
- `topics` (default, the realistic one): each vector mixes three of 256 random "topic" directions
  with sparse random weights, plus noise; each tenant writes about its own 4-64 topics (topics
  are shared between tenants) and asks about them. Neighbourhoods are continuous, as in sentence
  embeddings, where texts share themes to every degree.
- `blobs`: tight Gaussian clusters around random (so nearly orthogonal) centres: a thousand
  islands with nothing in between, adversarial for any graph index.
- `random`: uniform random unit vectors, no structure at all: the worst case for ANN search.

Tenants of mixed sizes: one with 40% of the rows, two with 10%, one just over the exact-scan
threshold (MEMORY_EXACT_SCAN_MAX_ROWS x 1.5), 25 with 1% each, and the rest in tenants of 50 rows.

Reported:
- bulk load (COPY, no vector or text index yet) rows/s, then HNSW and GIN build times;
- online inserts (COPY batches of 500 into the indexed table) rows/s;
- unfiltered k-NN (raw SQL on the HNSW index) and tenant-filtered k-NN through
  `apps.memory.search.vector_search` (the code the API and the agent loop run: bounded count,
  exact or HNSW iterative scan, re-sort), per tenant size: recall@10 against numpy's exact
  answer over the same rows, p50 and p95 latency (warm cache), and the strategy taken;
- the keyword search of the largest tenant, for scale.

DESIGN.md's budget: recall@10 >= 0.95 for every tenant size; p95 <= 5 ms at 100k, <= 15 ms at 1M.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import add_json_flag, emit_json, percentile

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")

BENCH_DB = "agentplatform_bench_memory"
EMBEDDING_MODEL = "bench-vectors"
K = 10


# --- database ------------------------------------------------------------------------------------


def _bench_database_url() -> str:
    """DATABASE_URL (or the embedded server) with the database name swapped for the bench's."""
    import environ

    env = environ.Env()
    port = env.int("EMBEDDED_PG_PORT", default=55432)
    base = env("DATABASE_URL", default="") or f"postgres://postgres@127.0.0.1:{port}/agentplatform"
    head, _, _ = base.rpartition("/")
    return f"{head}/{BENCH_DB}"


def _create_database(url: str) -> None:
    import psycopg

    admin_url = url.rpartition("/")[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DB_POOL_MAX_SIZE", "4")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    logging.getLogger("apps.memory").setLevel(logging.WARNING)


# --- data --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    vectors: np.ndarray  # (n, d) float32, unit rows
    tenant_of_row: np.ndarray  # (n,) int
    cluster_of_row: np.ndarray | None
    tenant_clusters: list[np.ndarray]
    centres: np.ndarray | None
    sizes: list[int]
    spread: float


def tenant_sizes(rows: int, exact_threshold: int) -> list[int]:
    sizes = [int(rows * 0.40), int(rows * 0.10), int(rows * 0.10), int(exact_threshold * 1.5)]
    sizes += [max(50, int(rows * 0.01))] * 25
    rest = rows - sum(sizes)
    if rest < 0:
        raise SystemExit(f"--rows {rows} is too small for the tenant mix; use at least 100000")
    sizes += [50] * (rest // 50)
    sizes[0] += rows - sum(sizes)
    return sizes


def _topic_mixture(topics: np.ndarray, pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Points mixing three of the pool's topics (sparse Dirichlet weights) plus noise: a continuous
    space where texts share themes to various degrees, as sentence embeddings do."""
    dims = topics.shape[1]
    chosen = rng.choice(pool, size=(count, 3))
    weights = rng.dirichlet([0.3, 0.3, 0.3], size=count).astype(np.float32)
    points = np.einsum("nk,nkd->nd", weights, topics[chosen]) + 0.03 * rng.standard_normal(
        (count, dims), dtype=np.float32
    )
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def make_dataset(rows: int, dims: int, sizes: list[int], distribution: str, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    tenant_of_row = np.repeat(np.arange(len(sizes)), sizes)
    spread = 0.05  # blobs: per-dimension noise, neighbours' cosine ~0.5
    if distribution == "random":
        vectors = rng.standard_normal((rows, dims), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return Dataset(vectors, tenant_of_row, None, [], None, sizes, spread)
    n_centres = 256 if distribution == "topics" else max(100, rows // 100)
    centres = rng.standard_normal((n_centres, dims), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    per_tenant = (
        (lambda size: int(np.clip(size // 500, 4, 64)))
        if distribution == "topics"
        else (lambda size: int(np.clip(size // 100, 2, n_centres)))
    )
    tenant_clusters = [rng.choice(n_centres, size=per_tenant(size), replace=False) for size in sizes]
    vectors = np.empty((rows, dims), dtype=np.float32)
    cluster_of_row = np.zeros(rows, dtype=np.int64)
    start = 0
    for tenant, size in enumerate(sizes):
        if distribution == "topics":
            vectors[start : start + size] = _topic_mixture(centres, tenant_clusters[tenant], size, rng)
        else:
            chosen = rng.choice(tenant_clusters[tenant], size=size)
            block = centres[chosen] + spread * rng.standard_normal((size, dims), dtype=np.float32)
            vectors[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
            cluster_of_row[start : start + size] = chosen
        start += size
    return Dataset(vectors, tenant_of_row, cluster_of_row, tenant_clusters, centres, sizes, spread)


def make_queries(
    data: Dataset, tenant: int | None, count: int, rng: np.random.Generator, distribution: str
) -> np.ndarray:
    """Queries like the data they search: about the tenant's own themes (any tenant's when None)."""
    dims = data.vectors.shape[1]
    if distribution == "random":
        queries = rng.standard_normal((count, dims), dtype=np.float32)
    elif distribution == "topics":
        if tenant is not None:
            return _topic_mixture(data.centres, data.tenant_clusters[tenant], count, rng)
        # Unfiltered: each query from the topics of the tenant of a random row (as real queries are).
        owners = data.tenant_of_row[rng.choice(len(data.vectors), size=count)]
        return np.concatenate([_topic_mixture(data.centres, data.tenant_clusters[t], 1, rng) for t in owners])
    else:
        rows = np.flatnonzero(data.tenant_of_row == tenant) if tenant is not None else np.arange(len(data.vectors))
        clusters = data.cluster_of_row[rng.choice(rows, size=count)]
        queries = data.centres[clusters] + data.spread * rng.standard_normal((count, dims), dtype=np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def far_queries(dims: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Random directions: questions about nothing the tenant wrote (the slow case for HNSW)."""
    queries = rng.standard_normal((count, dims), dtype=np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


# --- loading ------------------------------------------------------------------------------------------

COLUMNS = (
    "id, created_at, updated_at, tenant_id, kind, collection, category, content, summary, keywords, "
    "keywords_text, topic, importance, metadata, embedding, embedding_model, source_key"
)
TYPES = [
    "uuid",
    "timestamptz",
    "timestamptz",
    "uuid",
    "varchar",
    "varchar",
    "varchar",
    "text",
    "text",
    "jsonb",
    "text",
    "varchar",
    "float8",
    "jsonb",
    "vector",
    "varchar",
    "varchar",
]
# A long-tailed vocabulary of made-up words, eight per entry: the commonest appears in about a
# fifth of the entries (like "meeting" in work notes), most words are rare.
VOCABULARY = [f"w{n}x" for n in range(50000)]
_ZIPF = (len(VOCABULARY) * np.random.default_rng(11).random(4_000_000) ** 3).astype(np.int64)


def entry_words(n: int) -> str:
    return " ".join(VOCABULARY[i] for i in _ZIPF[(n * 8) % len(_ZIPF) : (n * 8) % len(_ZIPF) + 8])


def copy_rows(conn, ids, tenant_ids, vectors, first_row: int) -> None:
    """Binary COPY of memory rows; the text and tsvector are short but real."""
    import datetime as dt

    from psycopg.types.json import Jsonb

    now = dt.datetime.now(dt.UTC)
    statement = f"COPY memory_memoryentry ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(TYPES)
        for offset, (row_id, tenant_id, vector) in enumerate(zip(ids, tenant_ids, vectors, strict=True)):
            n = first_row + offset
            words = entry_words(n)
            copy.write_row(
                (
                    row_id,
                    now,
                    now,
                    tenant_id,
                    "semantic",
                    "semantic",
                    "",
                    f"bench entry {n}: {words}",
                    "",
                    Jsonb([]),
                    "",
                    "",
                    0.5,
                    Jsonb({}),
                    vector,
                    EMBEDDING_MODEL,
                    "",
                )
            )


def _index_definitions() -> dict[str, str]:
    from django.db import connection

    from apps.memory.models import MemoryEntry

    wanted = ("memory_embedding_hnsw", "memory_search_vector_gin")
    with connection.schema_editor(collect_sql=True) as editor:
        return {
            index.name: str(index.create_sql(MemoryEntry, editor))
            for index in MemoryEntry._meta.indexes
            if index.name in wanted
        }


def load(url: str, data: Dataset, tenant_pks: list[uuid.UUID], online: int) -> dict:
    import psycopg
    import uuid6
    from pgvector.psycopg import register_vector

    rows = len(data.vectors)
    bulk = rows - online
    ids = [uuid.UUID(str(uuid6.uuid7())) for _ in range(rows)]
    row_tenants = [tenant_pks[t] for t in data.tenant_of_row]
    figures: dict = {}
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("TRUNCATE memory_memoryentry")
        # The model's own index definitions (as the migration creates them, with the current
        # settings), rebuilt after the bulk load.
        definitions = _index_definitions()
        for name in definitions:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        # Load everything but the `online` rows, which are inserted after the indexes exist.
        order = np.random.default_rng(1).permutation(rows)
        bulk_rows, online_rows = order[:bulk], order[bulk:]
        started = time.perf_counter()
        for start in range(0, bulk, 50000):
            chunk = bulk_rows[start : start + 50000]
            copy_rows(conn, [ids[i] for i in chunk], [row_tenants[i] for i in chunk], data.vectors[chunk], start)
        figures["bulk_rows_per_s"] = bulk / (time.perf_counter() - started)

        # The graph builds in memory when it fits (about 1.2 KB a row here); far faster than on disk.
        conn.execute(f"SET maintenance_work_mem = '{max(1, round(rows * 1.3e-6 + 0.5))}GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")  # 2 cores: the leader and one worker
        started = time.perf_counter()
        conn.execute(definitions["memory_embedding_hnsw"])
        figures["hnsw_build_s"] = time.perf_counter() - started
        figures["hnsw_definition"] = definitions["memory_embedding_hnsw"].split(" USING ", 1)[1].replace('"', "")
        started = time.perf_counter()
        conn.execute(definitions["memory_search_vector_gin"])
        figures["gin_build_s"] = time.perf_counter() - started

        started = time.perf_counter()
        for start in range(0, len(online_rows), 500):
            chunk = online_rows[start : start + 500]
            copy_rows(conn, [ids[i] for i in chunk], [row_tenants[i] for i in chunk], data.vectors[chunk], bulk + start)
        figures["online_rows_per_s"] = len(online_rows) / (time.perf_counter() - started)
        conn.execute("VACUUM ANALYZE memory_memoryentry")
        figures["table_mb"] = conn.execute("SELECT pg_table_size('memory_memoryentry') / 1e6").fetchone()[0]
        figures["hnsw_mb"] = conn.execute("SELECT pg_relation_size('memory_embedding_hnsw') / 1e6").fetchone()[0]
    figures["ids"] = ids
    return figures


# --- measuring ------------------------------------------------------------------------------------------


def exact_top(data: Dataset, rows: np.ndarray, query: np.ndarray, k: int) -> set[int]:
    sims = data.vectors[rows] @ query
    top = np.argpartition(-sims, min(k, len(rows) - 1))[:k]
    return {int(rows[i]) for i in top}


def measure_unfiltered(url: str, data: Dataset, position: dict, queries: np.ndarray, ef_search: int) -> dict:
    import psycopg
    from pgvector.psycopg import register_vector

    all_rows = np.arange(len(data.vectors))
    dims = data.vectors.shape[1]
    recalls, times = [], []
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(f"SET hnsw.ef_search = {ef_search}")
        half = f"halfvec({int(dims)})"
        sql = f"SELECT id FROM memory_memoryentry ORDER BY embedding::{half} <=> %s::{half} LIMIT %s"  # noqa: S608
        for query in queries:  # warm: a serving index lives in shared buffers; the first pass reads it in
            conn.execute(sql, [query, K]).fetchall()
        for query in queries:
            started = time.perf_counter()
            found = conn.execute(sql, [query, K]).fetchall()
            times.append((time.perf_counter() - started) * 1000)
            truth = exact_top(data, all_rows, query, K)
            recalls.append(len({position[r[0]] for r in found} & truth) / K)
    return {"recall": statistics.mean(recalls), "p50": percentile(times, 50), "p95": percentile(times, 95)}


def measure_filtered(data: Dataset, position: dict, tenant: int, tenant_pk, queries: np.ndarray) -> dict:
    from apps.memory.search import MemoryFilter, clear_count_cache, vector_search

    rows = np.flatnonzero(data.tenant_of_row == tenant)
    filters = MemoryFilter(tenant_id=tenant_pk)
    clear_count_cache()
    recalls, times, strategies = [], [], {}
    for query in queries[:10]:
        vector_search(filters, query.tolist(), k=K, embedding_model=EMBEDDING_MODEL)
    for query in queries:
        vector = query.tolist()
        started = time.perf_counter()
        found, plan = vector_search(filters, vector, k=K, embedding_model=EMBEDDING_MODEL)
        times.append((time.perf_counter() - started) * 1000)
        strategies[plan.strategy] = strategies.get(plan.strategy, 0) + 1
        truth = exact_top(data, rows, query, min(K, len(rows)))
        recalls.append(len({position[i] for i, _ in found} & truth) / len(truth))
    return _summary(rows, recalls, times, strategies)


def measure_far(data: Dataset, position: dict, tenant: int, tenant_pk, queries: np.ndarray) -> dict:
    from apps.memory.search import MemoryFilter, vector_search

    rows = np.flatnonzero(data.tenant_of_row == tenant)
    filters = MemoryFilter(tenant_id=tenant_pk)
    recalls, times, strategies = [], [], {}
    for query in queries:
        started = time.perf_counter()
        found, plan = vector_search(filters, query.tolist(), k=K, embedding_model=EMBEDDING_MODEL)
        times.append((time.perf_counter() - started) * 1000)
        strategies[plan.strategy] = strategies.get(plan.strategy, 0) + 1
        truth = exact_top(data, rows, query, K)
        recalls.append(len({position[i] for i, _ in found} & truth) / K)
    return _summary(rows, recalls, times, strategies)


def _summary(rows, recalls, times, strategies) -> dict:
    return {
        "rows": len(rows),
        "recall": statistics.mean(recalls),
        "min_recall": min(recalls),
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "strategy": ", ".join(f"{name} {count}" for name, count in sorted(strategies.items())),
    }


def measure_keyword(tenant_pk, count: int) -> dict:
    from apps.memory.search import MemoryFilter, keyword_search

    filters = MemoryFilter(tenant_id=tenant_pk)
    times = []
    for n in range(count):
        started = time.perf_counter()
        keyword_search(filters, f"{VOCABULARY[_ZIPF[n * 13]]} {VOCABULARY[_ZIPF[n * 17 + 5]]}", k=K)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": percentile(times, 50), "p95": percentile(times, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="queries per measurement")
    parser.add_argument("--distribution", choices=["topics", "blobs", "random"], default="topics")
    parser.add_argument("--ef-search", default="", help="comma-separated values to compare (default: the setting)")
    parser.add_argument("--online", type=int, default=5000, help="rows inserted after the indexes exist")
    parser.add_argument("--seed", type=int, default=7)
    add_json_flag(parser)
    args = parser.parse_args()

    url = _bench_database_url()
    _create_database(url)
    _setup_django(url)
    from django.conf import settings

    from apps.tenancy.models import Tenant

    dims = settings.EMBEDDING_DIMENSIONS
    sizes = tenant_sizes(args.rows, settings.MEMORY_EXACT_SCAN_MAX_ROWS)
    print(
        f"memory_search: {args.rows:,} rows of {dims}-d {args.distribution} vectors, {len(sizes)} tenants; "
        f"HNSW m={settings.MEMORY_HNSW_M} ef_construction={settings.MEMORY_HNSW_EF_CONSTRUCTION}; "
        f"exact scan up to {settings.MEMORY_EXACT_SCAN_MAX_ROWS:,} rows"
    )
    started = time.perf_counter()
    data = make_dataset(args.rows, dims, sizes, args.distribution, args.seed)
    print(f"  generated in {time.perf_counter() - started:.1f} s")

    Tenant.objects.filter(slug__startswith="bench-mem-").delete()
    tenants = Tenant.objects.bulk_create(
        [Tenant(slug=f"bench-mem-{i}", name=f"bench {i}") for i in range(len(sizes))], batch_size=1000
    )
    tenant_pks = [t.pk for t in tenants]
    figures = load(url, data, tenant_pks, min(args.online, args.rows // 10))
    position = {row_id: i for i, row_id in enumerate(figures.pop("ids"))}
    print(
        f"  bulk load (COPY, before indexes): {figures['bulk_rows_per_s']:,.0f} rows/s\n"
        f"  HNSW build: {figures['hnsw_build_s']:.1f} s ({figures['hnsw_mb']:.0f} MB, {figures['hnsw_definition']});"
        f" GIN build: {figures['gin_build_s']:.1f} s; table {figures['table_mb']:.0f} MB\n"
        f"  online inserts (COPY x500 into the indexed table): {figures['online_rows_per_s']:,.0f} rows/s"
    )

    rng = np.random.default_rng(args.seed + 1)
    classes = [
        ("largest (40%)", 0),
        ("10%", 1),
        ("1.5 x exact threshold", 3),
        ("1%", 4),
        ("50 rows", len(sizes) - 1),
    ]

    def ask(tenant: int | None) -> np.ndarray:
        return make_queries(data, tenant, args.queries, rng, args.distribution)

    ef_values = [int(v) for v in args.ef_search.split(",") if v] or [settings.MEMORY_HNSW_EF_SEARCH]
    searches = []
    for ef_search in ef_values:
        settings.MEMORY_HNSW_EF_SEARCH = ef_search
        print(f"\n  hnsw.ef_search = {ef_search}  (recall@{K} vs exact; latency ms, warm)")
        unfiltered = measure_unfiltered(url, data, position, ask(None), ef_search)
        print(
            f"  {'unfiltered (raw SQL)':<28} {'':>9} recall {unfiltered['recall']:.3f}"
            f"  p50 {unfiltered['p50']:6.2f}  p95 {unfiltered['p95']:6.2f}"
        )
        per_tenant = {}
        for label, tenant in classes:
            result = per_tenant[label] = measure_filtered(data, position, tenant, tenant_pks[tenant], ask(tenant))
            print(
                f"  {'tenant ' + label:<28} {result['rows']:>9,} recall {result['recall']:.3f}"
                f" (min {result['min_recall']:.1f})  p50 {result['p50']:6.2f}  p95 {result['p95']:6.2f}"
                f"  [{result['strategy']}]"
            )
        far = measure_far(data, position, 0, tenant_pks[0], far_queries(dims, min(args.queries, 50), rng))
        print(
            f"  {'largest, unrelated queries':<28} {far['rows']:>9,} recall {far['recall']:.3f}"
            f" (min {far['min_recall']:.1f})  p50 {far['p50']:6.2f}  p95 {far['p95']:6.2f}  [{far['strategy']}]"
        )
        searches.append({"ef_search": ef_search, "unfiltered": unfiltered, "tenants": per_tenant, "far": far})
    keyword = measure_keyword(tenant_pks[0], min(args.queries, 100))
    print(f"\n  keyword search, largest tenant: p50 {keyword['p50']:.2f} ms  p95 {keyword['p95']:.2f} ms")
    budget = 5.0 if args.rows <= 100_000 else 15.0
    print(f"  budget: recall@{K} >= 0.95 for every tenant size, p95 <= {budget:g} ms")
    if args.json:
        emit_json(
            "memory_search",
            {
                "rows": args.rows,
                "distribution": args.distribution,
                "queries": args.queries,
                "load": figures,
                "searches": searches,
                "keyword_ms": keyword,
                "budget_p95_ms": budget,
            },
        )


if __name__ == "__main__":
    main()
