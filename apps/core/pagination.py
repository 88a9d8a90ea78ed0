from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination


class DefaultPagination(LimitOffsetPagination):
    """`?limit=&offset=`; answers `{count, next, previous, results}`."""

    default_limit = 50
    max_limit = 200
