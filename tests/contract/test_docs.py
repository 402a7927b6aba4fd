"""/docs: Swagger UI from assets shipped in the package (nothing from a CDN), under a strict CSP."""
import re

from api.docs import CSP


def test_docs_page_uses_only_local_assets_under_a_strict_csp(client):
    r = client.get("/docs")
    assert r.status_code == 200 and r.content_type.startswith("text/html")
    assert r.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "default-src 'none'" in CSP and "unsafe-eval" not in CSP
    page = r.get_data(as_text=True)
    assert "<script>" not in page and "http" not in page  # no inline code, no outside URL
    urls = re.findall(r'(?:src|href|data-spec-url)="([^"]+)"', page)
    assert "/openapi.json" in urls and len(urls) == 6
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    js = client.get("/docs/assets/zixly-docs.js").get_data(as_text=True)
    assert "validatorUrl: null" in js


def test_docs_need_no_credentials(client):
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs/assets/../app.py").status_code == 404
