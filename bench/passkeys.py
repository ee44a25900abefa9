"""A load generator's passkey for the benchmark: registers one P-256
credential through the API and signs assertions for it, as a platform
authenticator that keeps no signature counter does (counter 0, as synced
passkeys send), so that pre-made assertions may arrive in any order.

The crypto is the `cryptography` package's (ECDSA P-256, SHA-256); the
CBOR is the few shapes WebAuthn needs. The tests use a real software
authenticator (webauthn-authenticator-rs); this only feeds the server
load fast enough.
"""

import base64
import hashlib
import json
import secrets
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 256:
        return bytes([major << 5 | 24, n])
    if n < 65536:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    return bytes([major << 5 | 26]) + struct.pack(">I", n)


def cbor(value):
    """CBOR (RFC 8949) of ints, bytes, text and maps."""
    if isinstance(value, bool):
        raise TypeError("no booleans needed")
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


UP, UV, AT = 0x01, 0x04, 0x40


class Passkey:
    def __init__(self, origin):
        self.origin = origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(16)
        self.user_handle = None
        self.rp_id = None

    def _client_data(self, kind, challenge):
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin,
                           "crossOrigin": False}, separators=(",", ":")).encode()

    def register(self, options):
        """The answer to creation options (`{"publicKey": ...}`), attestation "none"."""
        pk = options["publicKey"]
        self.rp_id = pk["rp"]["id"]
        self.user_handle = unb64(pk["user"]["id"])
        numbers = self.key.public_key().public_numbers()
        cose = cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        auth_data = (hashlib.sha256(self.rp_id.encode()).digest() + bytes([UP | UV | AT]) + struct.pack(">I", 0)
                     + bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose)
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64(self._client_data("webauthn.create", pk["challenge"])),
                             "attestationObject": b64(attestation)},
                "clientExtensionResults": {}}

    def assert_(self, options):
        """The answer to request options, signed, counter 0."""
        pk = options["publicKey"]
        auth_data = hashlib.sha256(pk["rpId"].encode()).digest() + bytes([UP | UV]) + struct.pack(">I", 0)
        client_data = self._client_data("webauthn.get", pk["challenge"])
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64(client_data), "authenticatorData": b64(auth_data),
                             "signature": b64(signature), "userHandle": b64(self.user_handle)},
                "clientExtensionResults": {}}
