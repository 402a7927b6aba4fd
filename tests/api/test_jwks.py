"""Bearer tokens verified against a JWKS URL (an identity provider), served over real HTTP on loopback."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from api.tokens import InvalidToken, TokenVerifier


def test_jwks_url_verification():
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    other = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    jwks = json.dumps(KeySet([key]).as_dict(private=False)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        verifier = TokenVerifier(issuer="https://idp.example", audience="zixly-api",
                                 jwks_url=f"http://127.0.0.1:{server.server_port}/jwks.json")
        claims = {"iss": "https://idp.example", "aud": "zixly-api", "sub": "u1", "exp": int(time.time()) + 60,
                  "tenant": "acme", "role": "EDITOR"}
        good = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        assert verifier.verify(good).role == "EDITOR"
        forged = jwt.encode({"alg": "RS256", "kid": "k2"}, claims, other)
        try:
            verifier.verify(forged)
            raise AssertionError("a token signed by a key outside the JWKS was accepted")
        except InvalidToken:
            pass
    finally:
        server.shutdown()
