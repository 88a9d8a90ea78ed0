"""The address people reach the platform at, for links we hand out (invitation links)."""

from __future__ import annotations

from django.conf import settings


def public_base_url(request=None) -> str:
    """`PUBLIC_BASE_URL`, else the scheme and host this request came to, without a final slash.

    Behind a proxy the request's host is what the proxy forwarded (bounded by ALLOWED_HOSTS), so
    deployments set PUBLIC_BASE_URL; without a request and without the setting it is "" and
    links are paths.
    """
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL
    if request is None:
        return ""
    return request.build_absolute_uri("/").rstrip("/")
