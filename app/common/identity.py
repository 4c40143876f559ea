"""The caller's identity as the gateway passes it to the backends: the one place these names live.

KrakenD validates the RS256 token, then sets these headers from its claims (propagate_claims) and
adds the gateway secret; a client-sent header of the same name never reaches a backend through the
gateway. A request that bypasses the gateway has no valid secret and is refused with 401.
"""

from typing import Literal, get_args

USER_ID_HEADER = "X-User-Id"  # claim `sub`
USERNAME_HEADER = "X-User-Name"  # claim `preferred_username`
ROLES_HEADER = "X-User-Roles"  # claim `roles`, comma-separated
GATEWAY_SECRET_HEADER = "X-Gateway-Secret"  # value from var/gateway.secret, set by the gateway

# What the gateway sets from the token's claims, and the only client-facing headers a backend reads
# as identity (app/enrollment/deps.py `caller`).
IDENTITY_HEADERS = (USER_ID_HEADER, USERNAME_HEADER, ROLES_HEADER)

# The roles, named once: tokens carry them, the gateway checks them, both services use them.
Role = Literal["student", "instructor", "registrar"]
ROLES: tuple[Role, ...] = get_args(Role)
STUDENT, INSTRUCTOR, REGISTRAR = ROLES


def gateway_headers(secret: str, user_id: int, username: str, *roles: str) -> dict[str, str]:
    """The headers the gateway sets for a signed-in caller (for tests, benchmarks and tools that
    talk to a backend directly)."""
    return {
        GATEWAY_SECRET_HEADER: secret,
        USER_ID_HEADER: str(user_id),
        USERNAME_HEADER: username,
        ROLES_HEADER: ",".join(roles),
    }
