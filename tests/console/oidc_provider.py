"""A local OpenID Connect provider for the console's tests, following the protocol (OIDC Core, RFC 7636):
discovery, an authorization endpoint that signs in whoever the test chose (`sign_in_as`), a token endpoint
that checks the client, the redirect URI and the PKCE verifier, and its JWKS. Tokens are ES256 JWTs signed
with the suite's key, so the API's TokenVerifier accepts the access tokens like any issuer's."""
from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from pathlib import Path
import json
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import ECKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class OidcProvider:
    def __init__(self, private_key_file: Path, *, client_id: str, client_secret: str, audience: str,
                 staff_audience: str):
        self.key = ECKey.import_key(Path(private_key_file).read_bytes())
        self.client_id, self.client_secret = client_id, client_secret
        self.audience, self.staff_audience = audience, staff_audience
        self.user: dict | None = None
        self.codes: dict[str, dict] = {}
        self.token_requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> OidcProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    def sign_in_as(self, *, subject: str, tenant: str | None = None, role: str | None = None,
                   staff: bool = False, email: str | None = None) -> None:
        """The person who signs in at the next authorization request."""
        self.user = {"sub": subject, "tenant": tenant, "role": role, "staff": staff,
                     "email": email or f"{subject}@example.com"}

    def wsgi(self, environ, start_response):
        request = Request(environ)
        handler = {"/.well-known/openid-configuration": self.discovery, "/authorize": self.authorize,
                   "/token": self.token, "/jwks": self.jwks}.get(request.path)
        response = handler(request) if handler else Response("not found", 404)
        return response(environ, start_response)

    def discovery(self, request: Request) -> Response:
        return _json({"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                      "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
                      "response_types_supported": ["code"], "subject_types_supported": ["public"],
                      "id_token_signing_alg_values_supported": ["ES256"],
                      "code_challenge_methods_supported": ["S256"],
                      "token_endpoint_auth_methods_supported": ["client_secret_basic"]})

    def jwks(self, request: Request) -> Response:
        return _json({"keys": [{**self.key.as_dict(private=False), "kid": self.key.thumbprint(), "use": "sig",
                                "alg": "ES256"}]})

    def authorize(self, request: Request) -> Response:
        q = request.args
        if q.get("client_id") != self.client_id or q.get("response_type") != "code":
            return _json({"error": "invalid_request"}, 400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return _json({"error": "invalid_request", "error_description": "PKCE S256 required"}, 400)
        if "openid" not in (q.get("scope") or "").split() or self.user is None:
            return _json({"error": "invalid_scope"}, 400)
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.codes[code] = {"user": dict(self.user), "redirect_uri": q.get("redirect_uri"),
                                "challenge": q["code_challenge"], "nonce": q.get("nonce"), "at": time.time()}
        params = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return Response(status=302, headers={"Location": f"{q.get('redirect_uri')}?{urlencode(params)}"})

    def token(self, request: Request) -> Response:
        auth = request.authorization
        form = request.form.to_dict()
        self.token_requests.append(form)
        if auth is None or (auth.username, auth.password) != (self.client_id, self.client_secret):
            return _json({"error": "invalid_client"}, 401)
        with self._lock:
            grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return _json({"error": "invalid_grant"}, 400)
        if form.get("redirect_uri") != grant["redirect_uri"] or s256(form.get("code_verifier", "")) != \
                grant["challenge"]:
            return _json({"error": "invalid_grant", "error_description": "redirect_uri or PKCE mismatch"}, 400)
        user, now = grant["user"], int(time.time())
        base = {"iss": self.url, "sub": user["sub"], "iat": now, "exp": now + 600}
        access = {**base, "aud": self.staff_audience if user["staff"] else self.audience, "email": user["email"]}
        if user["staff"]:
            access["staff"] = True
        else:
            access.update(tenant=user["tenant"], role=user["role"])
        id_token = {**base, "aud": self.client_id, "nonce": grant["nonce"], "email": user["email"]}
        return _json({"access_token": self._sign(access), "id_token": self._sign(id_token), "token_type": "Bearer",
                      "expires_in": 600})

    def _sign(self, claims: dict) -> str:
        return jwt.encode({"alg": "ES256", "kid": self.key.thumbprint()}, claims, self.key)


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")
