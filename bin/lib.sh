# shellcheck shell=bash
# Shared by bin/start and bin/test: install what is missing, with visible progress, and skip
# whatever is already in place. Source it; do not run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$ROOT/.venv"
LITEFS_VERSION="v0.5.14"
KRAKEND_VERSION="v2.13.8"
MAILPIT_VERSION="v1.33.1"
GO_MIN="1.25"  # krakend-ce v2.13.8's go.mod says go 1.25.3
export PATH="$TOOLS/bin:$VENV/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31mError: %s\033[0m\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_debian_packages() {  # ensure_debian_packages [--browser]: also Chromium and its driver
    local missing=()
    if [ "${1:-}" = --browser ]; then
        # tests/e2e/test_web_app.py drives the web app in Debian's Chromium through Selenium.
        command -v chromium >/dev/null || missing+=(chromium)
        command -v chromedriver >/dev/null || missing+=(chromium-driver)
    fi
    command -v fusermount3 >/dev/null || missing+=(fuse3)
    command -v entr >/dev/null || missing+=(entr)
    command -v foreman >/dev/null || missing+=(ruby-foreman)
    command -v sqlite3 >/dev/null || missing+=(sqlite3)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    command -v prometheus >/dev/null || missing+=(prometheus)
    # The multihost tests and bin/multihost: network namespaces (ip) and their sysctls.
    command -v ip >/dev/null || missing+=(iproute2)
    command -v sysctl >/dev/null || missing+=(procps)
    if [ ${#missing[@]} -gt 0 ]; then
        say "Installing Debian packages: ${missing[*]}"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
        if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null \
            && systemctl is-active --quiet prometheus 2>/dev/null; then
            # Debian starts its own Prometheus service on :9090; this project runs its own under
            # foreman (bin/prometheus) with the cluster's config, on the same port.
            say "Stopping and disabling the prometheus system service that the package started"
            as_root systemctl disable --now prometheus
        fi
    fi
}

ensure_node() {  # the web app's unit tests (tests/web/*.test.mjs) run on node's own test runner
    # Node 20.19 or newer: it loads share/web/js/*.js, which are ES modules with no package.json to
    # say so, by their syntax. Debian's own nodejs (18 on bookworm) does not.
    if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
                  process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null; then
        die "Node.js 20.19 or newer is needed for the web app's tests (found: $(node --version 2>&1 || echo none)); install it and rerun."
    fi
    ensure_axe_core
}

# axe-core, the accessibility engine the browser tests inject into each view of the web app
# (tests/e2e/browser.py Browser.axe_problems), from the npm registry into .tools/axe-core, pinned.
AXE_CORE_VERSION="4.14.1"
AXE_CORE_DIR="$TOOLS/axe-core"

ensure_axe_core() {
    local marker="$AXE_CORE_DIR/.axe-core.version"
    if [ -f "$AXE_CORE_DIR/node_modules/axe-core/axe.min.js" ] \
        && [ "$(cat "$marker" 2>/dev/null)" = "$AXE_CORE_VERSION" ]; then
        return
    fi
    command -v npm >/dev/null || die "npm (which comes with Node.js) is needed to install axe-core for the browser tests."
    say "Installing axe-core $AXE_CORE_VERSION into .tools/axe-core (npm, first time only)"
    rm -rf "$AXE_CORE_DIR"
    mkdir -p "$AXE_CORE_DIR"
    npm install --prefix "$AXE_CORE_DIR" --no-audit --no-fund --no-save --silent \
        "axe-core@$AXE_CORE_VERSION" \
        || die "could not install axe-core $AXE_CORE_VERSION from the npm registry; see the npm output above."
    echo "$AXE_CORE_VERSION" >"$marker"
}

# uv, pinned, from PyPI into .tools/uv (its own small venv, made once): it creates .venv and
# installs requirements.txt in seconds, where python -m venv and pip took 30-45 s on 2 cores.
UV_VERSION="0.13.9"
UV="$TOOLS/uv/bin/uv"

ensure_uv() {
    local marker="$TOOLS/uv/.uv.version"
    if [ -x "$UV" ] && [ "$(cat "$marker" 2>/dev/null)" = "$UV_VERSION" ]; then
        return
    fi
    say "Installing uv $UV_VERSION into .tools/uv (first time only)"
    rm -rf "$TOOLS/uv"
    python3 -m venv "$TOOLS/uv"
    "$TOOLS/uv/bin/pip" install --disable-pip-version-check -q "uv==$UV_VERSION" \
        || die "could not install uv $UV_VERSION from PyPI; see the pip output above."
    echo "$UV_VERSION" >"$marker"
}

ensure_python() {
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Python 3.11 or newer is needed (found $(python3 --version 2>&1)); install it and rerun."
    local stamp="$VENV/.requirements.sha256" want
    want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
    if ! [ -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        install_python_packages "$want"
    fi
    # The checkout's own modules compiled too (__pycache__, ignored by git; only what changed
    # since, 0.35 s from none): where PYTHONDONTWRITEBYTECODE is set, every service process would
    # otherwise compile the app's modules again as it starts (importing both services: 1.01 s of
    # CPU without, 0.85-0.94 s with; the multihost tests, 7 times 3 hosts: 159 -> 156 CPU-s).
    "$VENV/bin/python" -m compileall -q -j 0 "$ROOT/app" "$ROOT/harness" "$ROOT/bench" >/dev/null
}

install_python_packages() {  # install_python_packages SHA256: requirements.txt into .venv
    local stamp="$VENV/.requirements.sha256"
    ensure_uv
    say "Installing Python packages into .venv (requirements.txt, with uv)"
    if [ ! -x "$VENV/bin/python" ]; then
        # On the interpreter python3 is (a pyenv shim resolved), never one uv would download;
        # --seed puts pip in it too, as python -m venv did.
        UV_PYTHON_DOWNLOADS=never "$UV" venv -q --seed \
            --python "$(python3 -c 'import sys; print(sys.executable)')" "$VENV"
    fi
    # Compiled to bytecode at install, as pip does: every service and test process would otherwise
    # compile what it imports again (about 0.7 s of CPU each where PYTHONDONTWRITEBYTECODE is set).
    "$UV" pip install -q --compile-bytecode --python "$VENV/bin/python" -r "$ROOT/requirements.txt"
    echo "$1" >"$stamp"
}

require_go() {  # require_go NAME: stop with one sentence unless Go >= GO_MIN is installed
    command -v go >/dev/null || die "Go is needed to build $1; install Go >= $GO_MIN and rerun."
    local have
    have="$(go env GOVERSION)"
    have="${have#go}"
    printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V -C \
        || die "Go $have is too old to build $1; install Go >= $GO_MIN and rerun."
}

go_build() {  # go_build NAME MODULE@VERSION; fails (status 1) if it cannot build
    local name="$1" module="$2"
    local version="${module##*@}" marker="$TOOLS/bin/.$1.version"
    if [ -x "$TOOLS/bin/$name" ] && [ "$(cat "$marker" 2>/dev/null)" = "$version" ]; then
        return 0
    fi
    require_go "$name"
    say "Building $name $version with go install (first time only; this takes a few minutes)"
    mkdir -p "$TOOLS/bin"
    GOBIN="$TOOLS/bin" GOFLAGS=-trimpath go install "$module" || return 1
    # go install names the binary after the package directory (krakend-ce for krakend)
    local built="$TOOLS/bin/${module%@*}"
    built="$TOOLS/bin/${built##*/}"
    [ "$built" = "$TOOLS/bin/$name" ] || mv "$built" "$TOOLS/bin/$name"
    echo "$version" >"$marker"
}

ensure_litefs() {
    local bin="$TOOLS/bin/litefs" marker="$TOOLS/bin/.litefs.version"
    # A binary built before the version marker existed counts if Go says it is the pinned module.
    if [ -x "$bin" ] && [ ! -e "$marker" ] && command -v go >/dev/null \
        && go version -m "$bin" 2>/dev/null \
        | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/superfly/litefs[[:space:]]+$LITEFS_VERSION[[:space:]]"; then
        echo "$LITEFS_VERSION" >"$marker"
    fi
    go_build litefs "github.com/superfly/litefs/cmd/litefs@$LITEFS_VERSION" \
        || die "could not build litefs $LITEFS_VERSION from the Go module proxy; see the go output above."
}

# Mailpit: the cluster's mail server (SMTP 127.0.0.1:1025, inbox 127.0.0.1:8025), which the
# notifier delivers to (issue 27). About 2 minutes to build the first time.
ensure_mailpit() {
    go_build mailpit "github.com/axllent/mailpit@$MAILPIT_VERSION" \
        || die "could not build mailpit $MAILPIT_VERSION from the Go module proxy; see the go output above."
}

# LiteFS mounts FUSE file systems: that needs /dev/fuse, which only root may open.
require_fuse() {
    [ "$(id -u)" = 0 ] \
        || die "LiteFS mounts FUSE file systems and must run as root: rerun this as root."
    [ -c /dev/fuse ] \
        || die "/dev/fuse is missing, so LiteFS cannot mount (load the fuse module, or give the container --device /dev/fuse --cap-add SYS_ADMIN)."
}

# The LiteFS FUSE mounts at or under DIR, one per line.
litefs_mounts() {
    local dir
    dir="$(realpath -m "$1")"
    awk -v dir="$dir" '$1 == "litefs" && ($2 == dir || index($2, dir "/") == 1) { print $2 }' \
        /proc/self/mounts
}

# Unmount what a killed LiteFS node left mounted at or under DIR, so it can be mounted again or
# deleted (rm -rf on a live mount would delete the replicated databases). A mount whose LiteFS
# still runs can be listed; then stop with one sentence instead of touching it. (Not `stat`: the
# kernel may answer that from its cache for a while after LiteFS died.)
unmount_stale_litefs() {
    local mnt
    while read -r mnt; do
        if timeout 5 ls -A "$mnt" >/dev/null 2>&1; then
            die "LiteFS is still running on ${mnt#"$ROOT"/}: stop the cluster (Ctrl-C in bin/start) first."
        fi
        say "Unmounting stale LiteFS mount ${mnt#"$ROOT"/}"
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
    done < <(litefs_mounts "$1")
}

# KrakenD CE, built from its own module source with -mod=readonly so that krakend-ce's go.sum
# verifies every module. Some Go module proxies refuse krakend-ce, lura and several krakend-*
# modules (this project's build machines answer 403 "This module version is not available"):
# ../shared/goproxy, when it exists, is a file GOPROXY holding exactly those module versions, put
# first, with the ordinary proxy after it for everything else.
KRAKEND_MIRROR="$ROOT/../shared/goproxy"
# The gateways' Go plugins: their source, one package main per directory, and where they are built
# (the config's "plugin" folder: bin/gateway, etc/krakend/templates/service.tmpl).
KRAKEND_PLUGIN_SOURCES="$ROOT/etc/krakend/plugins"
KRAKEND_PLUGINS="$TOOLS/krakend-plugins"

with_krakend_goproxy() {  # with_krakend_goproxy COMMAND...: with the mirror first in GOPROXY
    local goproxy
    goproxy="$(go env GOPROXY)"
    [ -d "$KRAKEND_MIRROR" ] && goproxy="file://$(realpath "$KRAKEND_MIRROR"),$goproxy"
    # The mirror's modules are checked against krakend-ce's go.sum, not the public checksum
    # database (which the refusing proxy's network may not reach for them either).
    GOPROXY="$goproxy" GONOSUMDB="github.com/krakend,github.com/luraproject" "$@"
}

krakend_source() {  # the krakend-ce module's directory in Go's module cache, downloaded if missing
    local dir
    dir="$(with_krakend_goproxy go mod download -json "github.com/krakend/krakend-ce/v2@$KRAKEND_VERSION" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin).get("Dir", ""))')" || true
    [ -n "$dir" ] || die "could not download krakend-ce $KRAKEND_VERSION (see the go output above)."
    echo "$dir"
}

# The Go release that built a Go binary ("go1.26.8"), or nothing.
go_built_by() { go version "$1" 2>/dev/null | awk '{print $NF}'; }

# KrakenD and its plugins. A Go plugin loads only into a binary built by the same Go release with
# the same module versions, with cgo: so both are built here, from the same krakend-ce module.
ensure_krakend() {
    local marker="$TOOLS/bin/.krakend.version"
    if [ ! -x "$TOOLS/bin/krakend" ] || [ "$(cat "$marker" 2>/dev/null)" != "$KRAKEND_VERSION" ]; then
        build_krakend
    fi
    ensure_krakend_plugins
}

build_krakend() {
    local bin="$TOOLS/bin/krakend" dir
    require_go krakend
    if [ -d "$KRAKEND_MIRROR" ]; then
        say "Building KrakenD $KRAKEND_VERSION (first time only, about 3 minutes on 2 cores; krakend modules from ${KRAKEND_MIRROR#"$ROOT"/})"
    else
        say "Building KrakenD $KRAKEND_VERSION (first time only, about 3 minutes on 2 cores)"
    fi
    dir="$(krakend_source)" || exit 1
    mkdir -p "$TOOLS/bin"
    # -mod=readonly: every module is verified against krakend-ce's own go.sum. cgo (Go's default
    # where a C compiler is installed) is what lets the binary load plugins at all.
    (cd "$dir" && CGO_ENABLED=1 with_krakend_goproxy go build -mod=readonly -trimpath \
        -ldflags "-X github.com/luraproject/lura/v2/core.KrakendVersion=${KRAKEND_VERSION#v}" \
        -o "$bin" ./cmd/krakend-ce) \
        || die "could not build KrakenD $KRAKEND_VERSION (see the go output above)."
    echo "$KRAKEND_VERSION" >"$TOOLS/bin/.krakend.version"
}

# Each etc/krakend/plugins/NAME (a package main) built into .tools/krakend-plugins/NAME.so, unless
# the one there was built for this KrakenD version and binary's Go from the same source (the
# marker .NAME.build says so). The source is built as a package of a writable copy of the
# krakend-ce module, the one the binary was built from: the plugin then links exactly the
# binary's module versions (go.sum, -mod=readonly), Go release, cgo and -trimpath.
ensure_krakend_plugins() {
    local bin="$TOOLS/bin/krakend" src name key marker built_by work="" dir
    built_by="$(go_built_by "$bin")"
    for src in "$KRAKEND_PLUGIN_SOURCES"/*/; do
        [ -d "$src" ] || continue
        name="$(basename "$src")"
        key="krakend $KRAKEND_VERSION ${built_by:-go?} source $(cd "$src" && sha256sum -- *.go | sha256sum | cut -d' ' -f1)"
        marker="$KRAKEND_PLUGINS/.$name.build"
        if [ -f "$KRAKEND_PLUGINS/$name.so" ] && [ "$(cat "$marker" 2>/dev/null)" = "$key" ]; then
            continue
        fi
        require_go "the KrakenD plugin $name"
        if [ "$built_by" != "$(go env GOVERSION)" ]; then
            say "KrakenD was built by ${built_by:-another Go} and Go is now $(go env GOVERSION): rebuilding it, since a plugin loads only into a binary of the Go that built the plugin"
            build_krakend
            built_by="$(go_built_by "$bin")"
            key="krakend $KRAKEND_VERSION $built_by source ${key##* }"
        fi
        command -v "$(go env CC)" >/dev/null \
            || die "a C compiler ($(go env CC)) is needed to build KrakenD plugins (cgo); install gcc and rerun."
        say "Building the KrakenD plugin $name (etc/krakend/plugins/$name; about 40 s the first time, seconds after)"
        if [ -z "$work" ]; then
            mkdir -p "$KRAKEND_PLUGINS"
            dir="$(krakend_source)" || exit 1
            # Under .tools, so that the finished plugin is moved into place in one rename: a
            # gateway starting meanwhile never reads half a file, and one running keeps its own.
            work="$(mktemp -d "$TOOLS/.krakend-plugin-build.XXXXXX")"
            cp -r "$dir" "$work/krakend-ce"
            chmod -R u+w "$work/krakend-ce"
        fi
        rm -rf "$work/krakend-ce/$name"
        cp -r "$src" "$work/krakend-ce/$name"
        if ! (cd "$work/krakend-ce" && CGO_ENABLED=1 with_krakend_goproxy go build -buildmode=plugin \
            -mod=readonly -trimpath -o "$work/$name.so" "./$name"); then
            rm -rf "$work"
            die "could not build the KrakenD plugin $name (see the go output above)."
        fi
        if ! check_krakend_plugin "$work/krakend-ce/go.sum"; then
            rm -rf "$work"
            die "krakend check-plugin: the plugin $name does not match the KrakenD binary (see above)."
        fi
        mv -f "$work/$name.so" "$KRAKEND_PLUGINS/$name.so"
        echo "$key" >"$marker"
    done
    [ -z "$work" ] || rm -rf "$work"
}

# krakend check-plugin GO.SUM: KrakenD's own check that a plugin built with the modules of GO.SUM
# and this Go loads into .tools/bin/krakend (the same Go release, the same version of every
# module). The binary names no libc (it is built without krakend-ce's GlibcVersion ldflag:
# "undefined"), and its plugins are built on the same machine, so the plugin's is given as that.
check_krakend_plugin() {
    local krakend="$TOOLS/bin/krakend" libc
    libc="$("$krakend" version 2>&1 | sed -n 's/^Glibc Version: //p')"
    "$krakend" check-plugin --go "$(go env GOVERSION | sed 's/^go//')" --libc "${libc:-undefined}" \
        --sum "$1"
}

# The plugins' source gofmt-clean, and every plugin's Go tests (etc/krakend/plugins/NAME/*_test.go,
# go vet's checks included), each as a package of a copy of the krakend-ce module, as it is built
# (ensure_krakend_plugins): the same Go and module versions, so a test can drive gin and lura
# themselves. -trimpath keeps Go's build cache valid from one copy to the next: about 4 s once the
# first run (about 15 s on 2 cores) has compiled gin and lura for the tests.
test_krakend_plugins() {
    local dir work src packages=() status=0 unformatted
    require_go "the KrakenD plugins' tests"
    unformatted="$(gofmt -l "$KRAKEND_PLUGIN_SOURCES")"
    [ -z "$unformatted" ] || die "gofmt would change (run gofmt -w on them): ${unformatted//$'\n'/ }"
    dir="$(krakend_source)" || exit 1
    mkdir -p "$TOOLS"
    work="$(mktemp -d "$TOOLS/.krakend-plugin-test.XXXXXX")"
    cp -r "$dir" "$work/krakend-ce"
    chmod -R u+w "$work/krakend-ce"
    for src in "$KRAKEND_PLUGIN_SOURCES"/*/; do
        [ -d "$src" ] || continue
        cp -r "$src" "$work/krakend-ce/$(basename "$src")"
        packages+=("./$(basename "$src")")
    done
    if [ ${#packages[@]} -gt 0 ]; then
        (cd "$work/krakend-ce" && CGO_ENABLED=1 with_krakend_goproxy go test -mod=readonly -trimpath \
            "${packages[@]}") || status=$?
    fi
    rm -rf "$work"
    return "$status"
}

# The variables of etc/cluster.env (foreman's environment) that are not set already: a test or a
# second cluster can move ports and paths by setting them first.
load_cluster_env() {
    local line key
    while IFS= read -r line; do
        [[ "$line" =~ ^([A-Z0-9_]+)=(.*)$ ]] || continue
        key="${BASH_REMATCH[1]}"
        [ -n "${!key+set}" ] || export "$key=${BASH_REMATCH[2]}"
    done <"$ROOT/etc/cluster.env"
}

# with_auth_primary VAR COMMAND...: run the LiteFS primary of the auth cluster under VAR (its
# auth.db is created through the mount, with the demo users, if missing), run COMMAND once it
# answers, then stop it, leaving nothing mounted. For bin/init.sh and bin/restore, with the
# cluster stopped.
with_auth_primary() {
    local var="$1"
    shift
    require_fuse
    ensure_litefs
    load_cluster_env
    export LITEFS_DIR="$var/litefs" AUTH_PRIVATE_JWKS="$var/auth/private.jwks.json"
    export AUTH_THROTTLE_DATABASE="$var/auth/throttle.db"
    if [ -f "$var/gateway.secret" ]; then
        export AUTH_GATEWAY_SECRET_FILE="$var/gateway.secret"
    else
        unset AUTH_GATEWAY_SECRET_FILE  # none yet: the route for the services stays shut
    fi
    "$ROOT/bin/auth-node" primary &
    local node=$! url="http://127.0.0.1:$AUTH_PRIMARY_PORT/.well-known/jwks.json" tries=0 status=0
    until curl -fs -o /dev/null "$url"; do
        if ! kill -0 "$node" 2>/dev/null || [ "$tries" -ge 600 ]; then
            kill -TERM "$node" 2>/dev/null || true
            wait "$node" || true
            die "the LiteFS primary did not come up (port $AUTH_PRIMARY_PORT busy? see above)"
        fi
        sleep 0.1
        tries=$((tries + 1))
    done
    "$@" || status=$?
    kill -TERM "$node"
    wait "$node" || true
    return "$status"
}
