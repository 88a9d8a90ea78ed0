"""The HNSW index over half-precision casts of the vectors.

Django writes an expression index with an operator class as `((expr) opclass)` only when
django.contrib.postgres is installed (it registers OpClass as an index wrapper); this project
does not install it, so this index writes its own statement:

    CREATE INDEX name ON table USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops)
        WITH (m = 16, ef_construction = 64)

Queries that want it must order by the same expression: `embedding::halfvec(384) <=> q::halfvec(384)`.
"""

from __future__ import annotations

from typing import Any

from pgvector.django import HnswIndex


class HalfvecHnswIndex(HnswIndex):
    def __init__(self, *, field: str, dimensions: int, **kwargs: Any) -> None:
        self.field = field
        self.dimensions = dimensions
        kwargs.pop("fields", None)
        super().__init__(fields=[field], **kwargs)

    def deconstruct(self) -> tuple[Any, Any, Any]:
        path, args, kwargs = super().deconstruct()
        kwargs.pop("fields", None)
        kwargs["field"] = self.field
        kwargs["dimensions"] = self.dimensions
        return path, args, kwargs

    def create_sql(self, model, schema_editor, using: str = "", **kwargs: Any) -> str:
        quote = schema_editor.quote_name
        column = model._meta.get_field(self.field).column
        with_params = ", ".join(self.get_with_params())
        return (
            f"CREATE INDEX {'CONCURRENTLY ' if kwargs.get('concurrently') else ''}{quote(self.name)} "
            f"ON {quote(model._meta.db_table)} USING hnsw "
            f"(({quote(column)}::halfvec({int(self.dimensions)})) halfvec_cosine_ops)"
            + (f" WITH ({with_params})" if with_params else "")
        )
