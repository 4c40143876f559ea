"""Every error `code` the auth service answers with, by status, with what it means: those both
services share (app/common/errors.py) and this service's own. A route declares the codes it can
answer from here (`responses=refuses(...)`, app/auth/routes.py); tests/test_error_codes.py holds
every raise site to this catalog and every route's declaration to the codes its code can raise.
"""

from app.common.errors import COMMON_CODES, Catalog

CODES: Catalog = {
    **COMMON_CODES,
    (401, "invalid_token"): "the token is missing, malformed, not this service's, or expired",
    (401, "invalid_credentials"): "the username or the password is wrong (which is not said)",
    (401, "session_ended"): "the session has ended (signed out, a reused refresh token, or a"
    " change to the account since the token was issued): sign in again",
    (401, "refresh_token_reused"): "this refresh token was used already: its session is ended,"
    " to be safe; sign in again",
    (401, "account_disabled"): "the account of this refresh token is disabled",
    (403, "account_disabled"): "the account is disabled (the registrar can re-enable it); for a"
    " registrar's request, their own account is",
    (403, "registrar_required"): "only a registrar may do this (make staff accounts, manage"
    " accounts)",
    (409, "username_taken"): "another account has this username",
    (409, "own_account"): "a registrar cannot change their own roles, disabled state or password"
    " through the account routes; another registrar can",
    (409, "last_registrar"): "the account is the last active registrar: make another first",
    (409, "request_in_progress"): "a request with this Idempotency-Key is still being answered"
    " (on the primary): send it again in a moment for its answer",
    (422, "weak_password"): "the password is the username",
    (429, "too_many_attempts"): "too many failed sign-ins for this username or from this"
    " address (Retry-After)",
    (429, "registration_rate_limited"): "too many registrations from this address (Retry-After)",
    (503, "read_replica"): "this node is a read replica and knows no primary to make the change:"
    " nothing was changed",
    (503, "primary_unavailable"): "the primary, which makes every change, cannot be reached"
    " from this replica: nothing was changed; retry",
}
