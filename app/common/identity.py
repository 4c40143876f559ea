"""The caller's identity as the gateway passes it to the backends: the one place these names live.

KrakenD validates the RS256 token, then sets these headers from its claims (propagate_claims) and
adds the gateway secret; a client-sent header of the same name never reaches a backend through the
gateway. A request that bypasses the gateway has no valid secret and is refused with 401.
"""

USER_ID_HEADER = "X-User-Id"  # claim `sub`
USERNAME_HEADER = "X-User-Name"  # claim `preferred_username`
ROLES_HEADER = "X-User-Roles"  # claim `roles`, comma-separated
GATEWAY_SECRET_HEADER = "X-Gateway-Secret"  # value from var/gateway.secret, set by the gateway

ROLES = ("student", "instructor", "registrar")
