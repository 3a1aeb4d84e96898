"""SHA-256 and SHA-1 constructors that do not load OpenSSL when the interpreter has its own.

``import hashlib`` loads ``_hashlib`` and with it libcrypto: about 2.5 ms of every CLI start here,
and agents run a hook after every tool call. CPython's built-in implementations give the same
digests; a build without them (FIPS-restricted ones) gets hashlib's."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from hashlib import _Hash

    Constructor = Callable[..., _Hash]

try:  # CPython 3.12+
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    try:  # CPython 3.11
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256 as _sha256  # type: ignore[assignment,unused-ignore]
try:
    from _sha1 import sha1 as _sha1  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from hashlib import sha1 as _sha1  # type: ignore[assignment,unused-ignore]

sha256: Constructor = _sha256
sha1: Constructor = _sha1


def sha256_hex(data: bytes) -> str:
    return sha256(data).hexdigest()  # type: ignore[no-any-return,unused-ignore]
