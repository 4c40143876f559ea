"""JWTs: RS256, header `kid`; claims iss, aud, sub, preferred_username, given_name, family_name,
roles, iat, exp, jti (SPEC §3; the names are OIDC's standard claims).

Access and refresh tokens differ in two claims, so neither can stand in for the other:
- `aud`: the audience (what the gateways accept) for access tokens, `<audience>:refresh` for
  refresh tokens. The gateways check `aud`, so they refuse a refresh token without knowing of it.
- `token_use`: "access" or "refresh", checked by this service as well.
"""

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from jwcrypto import jwk, jwt
from jwcrypto.common import JWException

from app.auth.keys import check_private_file

ALGORITHM = "RS256"
TokenUse = Literal["access", "refresh"]


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired, or not meant for this use."""


def refresh_audience(audience: str) -> str:
    """The `aud` of refresh tokens: never one the gateways accept."""
    return f"{audience}:refresh"


def build_claims(
    *,
    user_id: int,
    username: str,
    given_name: str,
    family_name: str,
    roles: list[str],
    issuer: str,
    audience: str,
    ttl_seconds: int,
    token_use: TokenUse = "access",
    now: int | None = None,
) -> dict[str, Any]:
    """The claims of one token; `audience` is the access audience whatever the `token_use`."""
    issued_at = int(time.time()) if now is None else now
    return {
        "iss": issuer,
        "aud": audience if token_use == "access" else refresh_audience(audience),
        "sub": str(user_id),
        "preferred_username": username,
        "given_name": given_name,
        "family_name": family_name,
        "roles": list(roles),
        "token_use": token_use,
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }


class KeyRing:
    """The service's signing keys: the first key of the JWKS signs, any of them verifies."""

    def __init__(self, private_jwks: dict[str, Any]) -> None:
        self._keyset = jwk.JWKSet.from_json(json.dumps(private_jwks))
        signing = [key for key in self._keyset if key.has_private and key.get("kty") == "RSA"]
        if not signing:
            raise ValueError("the JWKS holds no private RSA key to sign with")
        self._signing_key = signing[0]
        if not self._signing_key.get("kid"):
            raise ValueError("the signing key has no `kid`; the gateways look keys up by it")
        self.public_jwks = {
            "keys": [key.export(private_key=False, as_dict=True) for key in self._keyset]
        }

    @classmethod
    def from_file(cls, path: Path) -> "KeyRing":
        """Load the private JWKS, refusing a file anyone but its owner could read."""
        check_private_file(path)
        return cls(json.loads(path.read_text()))

    @property
    def signing_kid(self) -> str:
        return str(self._signing_key["kid"])

    def derive_secret(self, purpose: str) -> str:
        """A secret for `purpose` that only holders of the private signing key can compute: a
        shared secret of the auth nodes, which all read the same private JWKS."""
        private_exponent = self._signing_key.export(private_key=True, as_dict=True)["d"]
        return hmac.new(private_exponent.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    def sign(self, claims: dict[str, Any]) -> str:
        """Serialize `claims` as a compact RS256 JWS with the signing key's `kid`."""
        header = {"alg": ALGORITHM, "kid": self.signing_kid, "typ": "JWT"}
        token = jwt.JWT(header=header, claims=claims)
        token.make_signed_token(self._signing_key)
        return str(token.serialize())

    def verify(
        self, token: str, *, issuer: str, audience: str, token_use: TokenUse
    ) -> dict[str, Any]:
        """Return the claims of a valid, unexpired token of this use; else raise InvalidToken."""
        expected_aud = audience if token_use == "access" else refresh_audience(audience)
        checks = {
            "iss": issuer,
            "aud": expected_aud,
            "token_use": token_use,
            "exp": None,
            "iat": None,
            "sub": None,
            "jti": None,
        }
        try:
            parsed = jwt.JWT(
                algs=[ALGORITHM],
                check_claims=checks,
                expected_type="JWS",
                strict_serialization=True,
            )
            parsed.leeway = 0  # every node reads the same clock
            parsed.deserialize(token, key=self._keyset)
            claims: dict[str, Any] = json.loads(parsed.claims)
        except (JWException, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken(str(exc)) from exc
        if not isinstance(claims.get("roles"), list) or not str(claims["sub"]).isdigit():
            raise InvalidToken("token claims are malformed")
        return claims
