#!/usr/bin/env bash
# One side of the pi-check: `python -m edge_runtime check` and `run` on WORK/bundle over the files listed
# in the given WORK/sources_*.txt, with the same flags on the host and in the emulated Pi.
# Then the raw per-window log-mel and model outputs of the same files (bench/pi_check/scores.py).
# Usage: edge_runs.sh PYTHON WORK OUT_DIR SOURCES_FILE [SOURCES_FILE ...]
# Writes OUT_DIR/{probe.json, check.json, check.rc, check.log, detections.jsonl, status.json, run.rc, run.log,
# scores.npz, scores.rc, scores.log}.
# Exits 0 when both commands ran (their exit codes are in *.rc; the report judges them).
set -uo pipefail
py=$1 work=$2 out=$3
shift 3
rm -rf "$out" && mkdir -p "$out" || exit 1

"$py" -m bench.pi_check.probe >"$out/probe.json" 2>"$out/probe.log" || { cat "$out/probe.log" >&2; exit 1; }

# 5 s per frontend call: emulation is slow and the bound is not what is checked here (same flag on both sides).
"$py" -m edge_runtime check --bundle "$work/bundle" --frontend-timeout-seconds 5 --json \
    >"$out/check.json" 2>"$out/check.log"
echo $? >"$out/check.rc"

sources=()
for list in "$@"; do
    while IFS= read -r rel; do
        [ -n "$rel" ] && sources+=(--source "file:$work/audio/$rel")
    done <"$work/$list"
done
: >"$out/detections.jsonl"
"$py" -m edge_runtime run --bundle "$work/bundle" "${sources[@]}" \
    --sink "jsonl:$out/detections.jsonl" --outbox "$out/outbox.sqlite" --status "$out/status.json" \
    --device-id pi-check --frontend-timeout-seconds 5 --log-format json 2>"$out/run.log"
echo $? >"$out/run.rc"

lists=()
for list in "$@"; do lists+=(--list "$work/$list"); done
"$py" -m bench.pi_check.scores --bundle "$work/bundle" --audio-root "$work/audio" "${lists[@]}" \
    --out "$out/scores.npz" --frontend-timeout-seconds 5 2>"$out/scores.log"
echo $? >"$out/scores.rc"
exit 0
