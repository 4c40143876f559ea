#!/usr/bin/env bash
# Create the runtime state under var/ (or $VAR_DIR): the enrollment database with its seed, the
# auth signing keys (private JWKS for the auth service, public JWKS for the gateways), the auth
# database with the same seed people, and the gateway's shared secret.
#
#   bin/init.sh          asks before replacing anything
#   bin/init.sh --yes    no questions (replaces existing state)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

assume_yes=0
case "${1:-}" in
    --yes | -y) assume_yes=1 ;;
    "") ;;
    *) die "unknown option $1 (use --yes to answer yes to every question)" ;;
esac

VAR="${VAR_DIR:-$ROOT/var}"
ENROLL_DB="$VAR/enroll/enroll.db"
AUTH_DB="${AUTH_DB_PATH:-$VAR/auth/auth.db}"
PRIVATE_JWKS="$VAR/auth/private.jwks.json"
PUBLIC_JWKS="$VAR/gateway/jwks.json"
SECRET="$VAR/gateway.secret"

confirm() {
    [ "$assume_yes" = 1 ] && return 0
    local answer
    read -r -p "$1 [y/N] " answer
    [[ "$answer" =~ ^[Yy] ]]
}

existing=()
for f in "$ENROLL_DB" "$AUTH_DB" "$PRIVATE_JWKS" "$SECRET"; do
    [ -e "$f" ] && existing+=("${f#"$ROOT"/}")
done
if [ ${#existing[@]} -gt 0 ]; then
    confirm "This deletes ${existing[*]} and creates them anew. Continue?" || die "nothing changed"
    rm -f "$ENROLL_DB" "$ENROLL_DB-wal" "$ENROLL_DB-shm" "$AUTH_DB" "$AUTH_DB-wal" "$AUTH_DB-shm" \
        "$PRIVATE_JWKS" "$PUBLIC_JWKS" "$SECRET"
else
    confirm "Create the databases, keys and demo data under ${VAR#"$ROOT"/}/?" || die "nothing changed"
fi

umask 077
mkdir -p "$VAR/enroll" "$VAR/auth" "$VAR/gateway"
say "Gateway secret: ${SECRET#"$ROOT"/}"
python -c 'import secrets, sys; print(secrets.token_urlsafe(48))' >"$SECRET"
chmod 600 "$SECRET"

say "Enrollment database with demo data: ${ENROLL_DB#"$ROOT"/}"
python -m app.enrollment.init_db "$ENROLL_DB"

say "Auth signing keys and users database: ${AUTH_DB#"$ROOT"/}"
python -m app.auth.init_db --database "$AUTH_DB" \
    --private-jwks "$PRIVATE_JWKS" --public-jwks "$PUBLIC_JWKS"
chmod 755 "$VAR/gateway" && chmod 644 "$PUBLIC_JWKS"
say "Done. Demo users sign in with the password in README.md."
