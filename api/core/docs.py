"""``/docs``: Swagger UI from the sidecar's own copy (api/dashboard/static/vendor/swagger-ui).

FastAPI's default page loads an unpinned Swagger UI from a CDN and starts it with an inline
script, which a strict CSP (``script-src 'self'``) forbids; this page loads the vendored
bundle and ``/dashboard/docs.js``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} — API</title>
  <link rel="stylesheet" href="/dashboard/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
  <script src="/dashboard/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/dashboard/docs.js"></script>
</body>
</html>
"""


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (the app must be created with ``docs_url=None``)."""
    import html

    page = _PAGE.format(
        title=html.escape(app.title), openapi_url=html.escape(app.openapi_url or "")
    )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)
