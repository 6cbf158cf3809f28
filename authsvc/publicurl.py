"""Whether PUBLIC_URL can work on a patient's phone. The default
(http://127.0.0.1:8080, or http://0.0.0.0:... after http_address is opened)
names this server only: a slip or QR code with it leads nowhere. The
launcher's start message, `make doctor`, every staff page and the slip say so.
"""

import ipaddress
from urllib.parse import urlsplit


def unusable(url):
    """True when `url`'s host is loopback, unspecified (0.0.0.0, ::) or missing."""
    try:
        host = urlsplit(str(url or "")).hostname
    except ValueError:
        return True
    if not host:
        return True
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: whether it resolves is `make doctor`'s question
    return address.is_loopback or address.is_unspecified
