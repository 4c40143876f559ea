#!/usr/bin/env bash
# Create the runtime state under var/ (or $VAR_DIR): the enrollment database with its seed, the
# auth signing keys (private JWKS for the auth service, public JWKS for the gateways), the
# gateway's shared secret, and the auth database with the same seed people. LiteFS replicates only
# what is written through its mount, so the auth database is made by a short run of the LiteFS
# primary (bin/auth-node); re-initialising deletes the LiteFS state under var/litefs.
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
LITEFS="$VAR/litefs"
OLD_AUTH_DB="$VAR/auth/auth.db"  # written here before the auth database moved onto LiteFS
PRIVATE_JWKS="$VAR/auth/private.jwks.json"
PUBLIC_JWKS="$VAR/gateway/jwks.json"
SECRET="$VAR/gateway.secret"

# LiteFS replicates only what is written through a mount, so the auth users database is made by the
# LiteFS primary itself (bin/auth-node creates it through its mount when missing).
create_auth_database() {
    say "Auth users database with demo users, through the LiteFS primary: ${LITEFS#"$ROOT"/}/primary/mnt/auth.db"
    with_auth_primary "$VAR" true
}

confirm() {
    [ "$assume_yes" = 1 ] && return 0
    local answer
    read -r -p "$1 [y/N] " answer
    [[ "$answer" =~ ^[Yy] ]]
}

existing=()
for f in "$ENROLL_DB" "$LITEFS" "$OLD_AUTH_DB" "$PRIVATE_JWKS" "$SECRET"; do
    [ -e "$f" ] && existing+=("${f#"$ROOT"/}")
done
if [ ${#existing[@]} -gt 0 ]; then
    # Refuse while LiteFS runs there; unmount what a killed node left, so rm never recurses into
    # a FUSE mount.
    unmount_stale_litefs "$LITEFS"
    confirm "This deletes ${existing[*]} and creates them anew. Continue?" || die "nothing changed"
    rm -f "$ENROLL_DB" "$ENROLL_DB-wal" "$ENROLL_DB-shm" \
        "$OLD_AUTH_DB" "$OLD_AUTH_DB-wal" "$OLD_AUTH_DB-shm" "$PRIVATE_JWKS" "$PUBLIC_JWKS" "$SECRET" \
        "$VAR/auth/throttle.db" "$VAR/auth/throttle.db-wal" "$VAR/auth/throttle.db-shm" \
        "$ENROLL_DB.writer-lock"
    rm -rf --one-file-system "$LITEFS"
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

say "Auth signing keys: ${PRIVATE_JWKS#"$ROOT"/} (public half: ${PUBLIC_JWKS#"$ROOT"/})"
python -m app.auth.init_db --private-jwks "$PRIVATE_JWKS" --public-jwks "$PUBLIC_JWKS"
chmod 755 "$VAR/gateway" && chmod 644 "$PUBLIC_JWKS"
create_auth_database
say "Done. Demo users sign in with the password in README.md."
