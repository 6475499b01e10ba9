#!/usr/bin/env bash
# `make pi-check`: run edge_runtime in an emulated Raspberry Pi OS 64-bit userland and compare with the host.
#
# Debian bookworm arm64 (the base of Raspberry Pi OS bookworm 64-bit: Python 3.11, glibc 2.36), built with
# debootstrap and run under qemu-user-static through binfmt_misc, in a chroot with an aarch64 /proc/cpuinfo
# (a Pi 5's; ai-edge-litert 2.3 segfaults under qemu 7.2 when it reads the x86_64 host's). Two venvs in it:
#   venv-litert: pip install '.[edge,edge-audio]' from this checkout (numpy, wasmtime, ai-edge-litert, soxr, soundfile)
#   venv-tflite: numpy<2, tflite-runtime==2.14.0, wasmtime (what an older Pi setup has)
# Each runs `python -m edge_runtime check` and `run` on the tone-detector bundle over real and synthetic
# audio (bench/pi_check/prepare.py), as the host does with its own venv; bench/pi_check/report.py compares
# them (identical decisions, probabilities within 1e-6) and writes bench/results/pi-check.json.
#
# Needs root (debootstrap, chroot, mounts) and, when missing, installs debootstrap and qemu-user-static with
# apt-get. Every mount is made in a private mount namespace (unshare -m) and disappears with it.
# The root and the venvs are cached under $PI_CHECK_CACHE (default ~/.cache/birdlab/pi) and reused.
#
# Exit status: 0 pass; 1 a difference or a failed run (see the report); 2 cannot run here (not root, no
# apt-get); 75 infrastructure error (mirror, PyPI, binfmt_misc, fork limits): worth one retry.
set -euo pipefail

EX_INFRA=75
cd "$(dirname "$0")/../.."
REPO=$(pwd)
HOST_PYTHON=${PI_CHECK_HOST_PYTHON:-$REPO/.venv/bin/python}
CACHE=${PI_CHECK_CACHE:-${BIRDLAB_CACHE_DIR:-$HOME/.cache/birdlab}/pi}
MIRROR=${PI_CHECK_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
ROOT=$CACHE/$SUITE-arm64
WORK=$CACHE/work
OUT=${PI_CHECK_OUT:-$REPO/bench/results/pi-check.json}
CPUINFO=$REPO/bench/pi_check/cpuinfo-pi5.txt
PI_WORK=/pi-check/work
PI_SRC=/pi-check/src
VENV_LITERT=/opt/pi-check/venv-litert
VENV_TFLITE=/opt/pi-check/venv-tflite
TFLITE_REQUIREMENTS=("numpy<2" "tflite-runtime==2.14.0" "wasmtime")
ROOT_PACKAGES=python3,python3-venv,ca-certificates

declare -A TIMINGS=()
START=$SECONDS
step_start=$SECONDS

log() { echo "pi-check: $*" >&2; }
infra() { log "infrastructure error: $*"; exit "$EX_INFRA"; }
timed() { TIMINGS[$1]=$((SECONDS - step_start)); step_start=$SECONDS; }

mounts_under() {  # prints the mount points at or under $1 (none expected: every mount is namespaced)
    awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts
}

remove_tree() {  # rm -rf $1, refusing when something is mounted under it (a host /dev must never be deleted)
    if [ -n "$(mounts_under "$1")" ]; then
        log "refusing to delete $1: mounted under it: $(mounts_under "$1" | tr '\n' ' ')"; exit 1
    fi
    rm -rf "$1"
}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        log "needs root (debootstrap, chroot and mounts); run: sudo make pi-check"; exit 2
    fi
}

install_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
    command -v unshare >/dev/null || missing+=(util-linux)
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || { log "install ${missing[*]} (no apt-get here)"; exit 2; }
    log "installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || infra "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
        || infra "apt-get install ${missing[*]} failed"
}

setup_binfmt() {  # binfmt_misc mounted and qemu-aarch64 registered (the package's postinst may not have)
    local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    if [ ! -e "$dir/register" ]; then
        mount -t binfmt_misc binfmt_misc "$dir" \
            || infra "cannot mount binfmt_misc on $dir (an unprivileged container? run it privileged)"
    fi
    if [ ! -e "$dir/qemu-aarch64" ]; then
        if command -v update-binfmts >/dev/null && update-binfmts --enable qemu-aarch64 2>/dev/null; then :
        elif [ -f "$conf" ]; then grep -v '^#' "$conf" >"$dir/register" || infra "cannot register $conf"
        else infra "qemu-aarch64 is not registered in binfmt_misc and $conf is missing"
        fi
    fi
    [ "$(head -1 "$dir/qemu-aarch64")" = enabled ] || echo 1 >"$dir/qemu-aarch64"
    grep -q '^flags:.*F' "$dir/qemu-aarch64" \
        || infra "qemu-aarch64 is registered without the F (fix-binary) flag: a chroot cannot find the interpreter"
}

build_root() {  # $ROOT: debootstrapped once, reused while its marker file exists
    if [ -f "$ROOT/.pi-check-root" ]; then
        log "reusing $ROOT ($(cat "$ROOT/.pi-check-root"))"; return
    fi
    local tmp=$CACHE/.root.tmp
    mkdir -p "$CACHE"
    remove_tree "$tmp"
    log "debootstrap $SUITE arm64 from $MIRROR into $ROOT (a few minutes; log in $CACHE/debootstrap.log)"
    unshare -m --propagation private debootstrap --arch=arm64 --variant=minbase --include="$ROOT_PACKAGES" \
        "$SUITE" "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -n 15 "$CACHE/debootstrap.log" >&2; infra "debootstrap failed (mirror $MIRROR)"; }
    echo "$SUITE arm64 $ROOT_PACKAGES, built $(date -u +%FT%TZ)" >"$tmp/.pi-check-root"
    remove_tree "$ROOT"
    mv "$tmp" "$ROOT"
}

host_ca_file() {
    local f
    for f in "${SSL_CERT_FILE:-}" "${PIP_CERT:-}" /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
        [ -n "$f" ] && [ -f "$f" ] && { echo "$f"; return; }
    done
}

sync_into_root() {  # network config, CA certificates and this checkout's code into the root
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    local ca; ca=$(host_ca_file)
    if [ -n "$ca" ]; then cp "$ca" "$ROOT/etc/ssl/certs/pi-check-host-ca.crt"; fi
    remove_tree "$ROOT$PI_SRC"
    mkdir -p "$ROOT$PI_SRC" "$ROOT$PI_WORK" "$WORK"
    tar -C "$REPO" -cf - --exclude=__pycache__ --exclude=bench/results pyproject.toml README.md edge_runtime birdlab bench \
        | tar -C "$ROOT$PI_SRC" -xf -
}

in_pi() {  # in_pi 'COMMANDS': run a bash command line in the emulated Pi (private mounts, clean environment)
    local env=(PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONPATH=$PI_SRC
               PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off PIP_CERT=/etc/ssl/certs/pi-check-host-ca.crt)
    local var
    for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY; do
        [ -n "${!var:-}" ] && env+=("$var=${!var}")
    done
    unshare -m --propagation private /bin/bash -euc '
        root=$1 cpuinfo=$2 work=$3 pi_work=$4; shift 4
        mount -t proc proc "$root/proc"
        mount --bind "$cpuinfo" "$root/proc/cpuinfo"
        mount -t sysfs sysfs "$root/sys"
        mount --bind /dev "$root/dev"
        mount --bind "$work" "$root$pi_work"
        exec chroot "$root" /usr/bin/env -i "$@"
    ' in_pi "$ROOT" "$CPUINFO" "$WORK" "$PI_WORK" "${env[@]}" /bin/bash -euc "$1"
}

ensure_venv() {  # ensure_venv VENV STAMP 'PIP ARGS': (re)create VENV when its stamp differs
    local venv=$1 stamp=$2 pip_args=$3
    if [ "$(cat "$ROOT$venv/.pi-check-stamp" 2>/dev/null)" = "$stamp" ]; then
        log "reusing $venv"; return
    fi
    log "creating $venv in the emulated Pi: pip install $pip_args (slow under emulation)"
    remove_tree "$ROOT$venv"
    if [ ! -f "$ROOT/opt/pi-check/venv-base/.pi-check-stamp" ]; then
        # One `python3 -m venv` (ensurepip is minutes under emulation), copied for each venv.
        remove_tree "$ROOT/opt/pi-check/venv-base"
        in_pi "python3 -m venv /opt/pi-check/venv-base && touch /opt/pi-check/venv-base/.pi-check-stamp" \
            || infra "python3 -m venv failed in the emulated Pi"
    fi
    cp -a "$ROOT/opt/pi-check/venv-base" "$ROOT$venv"
    rm -f "$ROOT$venv/.pi-check-stamp"
    in_pi "$venv/bin/python -m pip install --no-compile -q $pip_args" \
        || { remove_tree "$ROOT$venv"; infra "pip install $pip_args failed in the emulated Pi (PyPI, certificates?)"; }
    echo "$stamp" >"$ROOT$venv/.pi-check-stamp"
}

write_timings() {
    TIMINGS[total]=$((SECONDS - START))
    local k sep="" json="{"
    for k in "${!TIMINGS[@]}"; do json+="$sep\"$k\": ${TIMINGS[$k]}"; sep=", "; done
    echo "$json}" >"$WORK/timings.json"
}

main() {
    need_root
    [ -x "$HOST_PYTHON" ] || { log "no host Python at $HOST_PYTHON (run make test first, or set PI_CHECK_HOST_PYTHON)"; exit 2; }
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
    install_tools
    setup_binfmt
    timed tools_s
    build_root
    timed root_s
    sync_into_root
    local stamp
    stamp="litert $(sha256sum pyproject.toml | cut -c1-16)"
    ensure_venv "$VENV_LITERT" "$stamp" "'$PI_SRC[edge,edge-audio]'"
    ensure_venv "$VENV_TFLITE" "tflite ${TFLITE_REQUIREMENTS[*]}" "$(printf "'%s' " "${TFLITE_REQUIREMENTS[@]}")"
    timed venvs_s

    mkdir -p "$WORK"
    find "$WORK" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} "$HOST_PYTHON" -m bench.pi_check prepare --work "$WORK" --cache "$CACHE" || { log "prepare failed"; exit 1; }
    timed prepare_s
    bash bench/pi_check/edge_runs.sh "$HOST_PYTHON" "$WORK" "$WORK/out/host" sources_decoded.txt sources_original.txt
    timed host_runs_s
    local runs="bash $PI_SRC/bench/pi_check/edge_runs.sh"
    in_pi "$runs $VENV_LITERT/bin/python $PI_WORK $PI_WORK/out/pi-litert sources_decoded.txt sources_original.txt" \
        || infra "the emulated Pi did not start (qemu, chroot)"
    timed pi_litert_runs_s
    in_pi "$runs $VENV_TFLITE/bin/python $PI_WORK $PI_WORK/out/pi-tflite sources_decoded.txt" \
        || infra "the emulated Pi did not start (qemu, chroot)"
    timed pi_tflite_runs_s
    write_timings
    local rc=0
    "$HOST_PYTHON" -m bench.pi_check report --work "$WORK" --pi-audio-root "$PI_WORK/audio" \
        --timings "$WORK/timings.json" --out "$OUT" || rc=$?
    if [ "$rc" != 0 ] && grep -lsE "Resource temporarily unavailable|can't start new thread|Cannot allocate memory" \
            "$WORK"/out/*/*.log >&2; then
        infra "the runs above hit a fork, thread or memory limit of this machine"
    fi
    log "logs of each side in $WORK/out/; total $((SECONDS - START)) s"
    return "$rc"
}

main "$@"
