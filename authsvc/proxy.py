"""X-Forwarded-* believed only from the configured proxy.

The client address feeds the brute-force limits and the audit log: a client
that reached the service directly could otherwise claim any address."""

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix

FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
             "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX")


class TrustedProxyFix:
    """`trusted`: addresses or networks ("127.0.0.1", "172.28.0.10/32")."""

    def __init__(self, app, trusted):
        self.trusted = [ipaddress.ip_network(t, strict=False) for t in trusted]
        self.plain = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1)

    def _is_trusted(self, address):
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def __call__(self, environ, start_response):
        if self._is_trusted(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        for name in FORWARDED:
            environ.pop(name, None)
        return self.plain(environ, start_response)
