"""Signing keys: generate RSA RS256 JWKS, write the private set owner-only, publish the public set.

The private JWKS is read by the auth service only; the public JWKS is what the gateways verify with.
"""

import json
import os
import stat
from pathlib import Path
from typing import Any

from jwcrypto import jwk

RSA_BITS = 2048
PRIVATE_FILE_MODE = 0o600


def generate_key(kid: str) -> jwk.JWK:
    """A fresh RSA-2048 signing key for RS256, named `kid`."""
    return jwk.JWK.generate(kty="RSA", size=RSA_BITS, kid=kid, use="sig", alg="RS256")


def generate_jwks(kids: list[str]) -> dict[str, Any]:
    """A JWKS document holding one new private key per kid, in order (the first one signs)."""
    if not kids:
        raise ValueError("at least one key id is needed")
    if len(set(kids)) != len(kids):
        raise ValueError("key ids must be distinct")
    return {"keys": [generate_key(kid).export(private_key=True, as_dict=True) for kid in kids]}


def public_jwks(private: dict[str, Any]) -> dict[str, Any]:
    """The same keys with every private member removed, fit to publish."""
    keyset = jwk.JWKSet.from_json(json.dumps(private))
    return {"keys": [key.export(private_key=False, as_dict=True) for key in keyset]}


def check_private_file(path: Path) -> None:
    """Raise ValueError unless `path` is a file only its owner can read or write (mode 0600)."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist; run bin/init.sh to create the signing keys")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(
            f"{path} has mode {mode:04o}: the private signing key must be readable by its owner "
            f"only; run `chmod 600 {path}`"
        )


def write_private_jwks(path: Path, private: dict[str, Any]) -> None:
    """Create `path` with mode 0600 from the start (never briefly readable); refuse to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w") as out:
        json.dump(private, out, indent=2)
        out.write("\n")


def write_public_jwks(path: Path, public: dict[str, Any]) -> None:
    """Replace `path` atomically, so a gateway never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(public, indent=2) + "\n")
    tmp.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    os.replace(tmp, path)
