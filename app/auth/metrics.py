"""The auth service's business metrics (prometheus-client; /metrics, app/common/observe.py)."""

from prometheus_client import Counter

LOGINS = Counter(
    "logins",
    "Sign-ins answered by this node by outcome: success, or the refusal's code"
    " (invalid_credentials, account_disabled, too_many_failures...). A sign-in a replica"
    " relays to the primary is counted by the replica that answered the client.",
    ["outcome"],
)
THROTTLE_REFUSALS = Counter(
    "throttle_refusals",
    "Attempts refused by an abuse limit (429), by limit (app/auth/throttle.py):"
    " login_username_address (failures for one username from one address), login_address"
    " (failures from one address), login_username (a username over its failures from all"
    " addresses, tried from an address that has failed at it), registration_address.",
    ["limit"],
)
REGISTRATIONS = Counter("registrations", "Accounts created on this node (the LiteFS primary).")
