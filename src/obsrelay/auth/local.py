"""Local mode: obsrelay signs its own user tokens with a key kept in its data directory.

The key (EC P-256, ES256) is made on first use and stored as a PEM file readable only
by its owner. Tokens carry issuer `obsrelay-local` and audience `obsrelay`, and are
checked by the same TokenVerifier as OIDC tokens, through a key set of one key.
"""

import json
import os
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt import PyJWKSet
from jwt.algorithms import ECAlgorithm

LOCAL_ISSUER = "obsrelay-local"
LOCAL_AUDIENCE = "obsrelay"
ROLES_CLAIM = "roles"
KEY_FILE = "signing-key.pem"


def _load_or_create(path: Path) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    """The key in `path`, made there first if there is none; and whether it was made."""
    made = not path.exists()
    if made:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written with owner-only permissions from the start, then moved into place.
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        os.replace(temporary, path)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC private key")
    return loaded, made


class LocalSigner:
    """Issues and describes local-mode tokens."""

    def __init__(self, data_dir: Path) -> None:
        self.key_path = data_dir / KEY_FILE
        self._key, self.made = _load_or_create(self.key_path)
        public = json.loads(ECAlgorithm.to_jwk(self._key.public_key()))
        self.kid = uuid.uuid5(uuid.NAMESPACE_URL, public["x"] + public["y"]).hex[:16]
        public.update(kid=self.kid, alg="ES256", use="sig")
        self.key_set = PyJWKSet.from_dict({"keys": [public]})

    def issue(self, user_id: str, name: str, roles: list[str], expires_in_seconds: float) -> str:
        now = int(time.time())
        claims = {
            "iss": LOCAL_ISSUER,
            "aud": LOCAL_AUDIENCE,
            "sub": user_id,
            "name": name,
            ROLES_CLAIM: roles,
            "iat": now,
            "exp": now + int(expires_in_seconds),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})
