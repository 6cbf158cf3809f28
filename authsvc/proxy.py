"""X-Forwarded-* believed only from nginx.

The client address feeds the brute-force limits and the audit log: a client
that reached the service directly could otherwise claim any address. A peer
address alone proves little: every local process connects from 127.0.0.1.
So when the secrets hold `forwarded_secret` (the launcher makes one, and
writes it into nginx's configuration), nginx proves itself with it in the
`X-Authsvc-Proxy` header, and the forwarded headers are believed only from a
peer in TRUSTED_PROXIES that sends it; from anyone else they are dropped and
the request is the connection's own. Without that secret (the docker image,
whose nginx.conf is static) the peer address decides alone: there nginx has
an address of its own on the compose network, which no other process shares."""

import hmac
import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix

FORWARDED = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
)
PROOF = "HTTP_X_AUTHSVC_PROXY"  # the header X-Authsvc-Proxy, as WSGI names it


class TrustedProxyFix:
    """`trusted`: addresses or networks ("127.0.0.1", "172.28.0.10/32");
    `secret`: what nginx sends in X-Authsvc-Proxy, or None (peers decide)."""

    def __init__(self, app, trusted, secret=None):
        self.trusted = [ipaddress.ip_network(t, strict=False) for t in trusted]
        self.secret = secret.encode() if secret else None
        self.plain = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1)

    def _is_trusted(self, address):
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def _proves_nginx(self, given):
        if self.secret is None:
            return True
        return hmac.compare_digest(given.encode("latin-1", "replace"), self.secret)

    def __call__(self, environ, start_response):
        # The proof never reaches a route (nor a log).
        given = environ.pop(PROOF, "")
        if self._is_trusted(environ.get("REMOTE_ADDR")) and self._proves_nginx(given):
            return self.fixed(environ, start_response)
        for name in FORWARDED:
            environ.pop(name, None)
        return self.plain(environ, start_response)
