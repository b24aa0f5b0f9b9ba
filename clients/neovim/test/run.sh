#!/usr/bin/env bash
# Headless end-to-end test of the Neovim plugin against a real bridge and a real emulator.
#
#   bash clients/neovim/test/run.sh
#
# NVIM_TESTS: the test files to run (default: test/test_*.lua).
# CIRCLE_BRIDGE_BIN: the circle-bridge executable (default: ../../.venv/bin/circle-bridge,
# relative to clients/neovim). Exits non-zero on any failure; the last line on stdout is
# `neovim: N passed, M failed`.
set -euo pipefail

PLUGIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$PLUGIN_DIR"

BIN="${CIRCLE_BRIDGE_BIN:-../../.venv/bin/circle-bridge}"
if [[ "$BIN" == */* ]]; then
  BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
else
  BIN="$(command -v "$BIN" || true)"
fi
if [[ ! -x "$BIN" ]]; then
  echo "run.sh: circle-bridge not found at '${CIRCLE_BRIDGE_BIN:-../../.venv/bin/circle-bridge}' (set CIRCLE_BRIDGE_BIN)" >&2
  exit 2
fi
if ! command -v nvim >/dev/null; then
  echo "run.sh: nvim not found; run clients/neovim/install-nvim.sh first" >&2
  exit 2
fi

WORK="$(mktemp -d)"
EMULATOR_PID=""
cleanup() {
  exec 3<&- 2>/dev/null || true
  if [[ -n "$EMULATOR_PID" ]]; then
    kill "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The emulator prints one JSON line and keeps running; read it through a FIFO so the wait is
# bounded by `read -t` instead of polling a file.
mkfifo "$WORK/emulator.out"
"$BIN" emulator >"$WORK/emulator.out" 2>"$WORK/emulator.err" &
EMULATOR_PID=$!
exec 3<"$WORK/emulator.out"
if ! IFS= read -r -t 30 EMULATOR_JSON <&3; then
  echo "run.sh: the emulator printed no JSON line within 30 s; its stderr:" >&2
  cat "$WORK/emulator.err" >&2
  exit 1
fi

# JSON -> shell assignments, with the same interpreter the bridge uses.
PYTHON="$(dirname "$BIN")/python"
[[ -x "$PYTHON" ]] || PYTHON="python3"
ASSIGNMENTS="$("$PYTHON" -c '
import json, shlex, sys
info = json.loads(sys.argv[1])
env = {
    "CIRCLE_TOKEN_URL": "tokenUrl", "CIRCLE_SERVICE_URL": "serviceUrl",
    "CIRCLE_CUSTOMER_ID": "customerId", "CIRCLE_APP_KEY": "appKey",
    "CIRCLE_END_USER_ID": "endUserId", "CIRCLE_SECRET": "secret",
    "EMULATOR_CONTROL_URL": "controlUrl",  # for fault switches; not a bridge setting
}
for name, key in env.items():
    print(f"export {name}={shlex.quote(str(info[key]))}")
' "$EMULATOR_JSON")"
eval "$ASSIGNMENTS"
export CIRCLE_BRIDGE_BIN="$BIN"

# Keep Neovim's state (and lsp.log, where the bridge's stderr lands) out of the real home.
export XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data" XDG_STATE_HOME="$WORK/state" XDG_CACHE_HOME="$WORK/cache"

# Each test/test_*.lua runs in its own Neovim. `cquit 2` only runs if a test file itself failed
# to load or run to its end (it always quits on its own otherwise); pipefail makes nvim's exit
# code the pipeline's.
rc=0
for test_file in ${NVIM_TESTS:-test/test_*.lua}; do
  timeout -k 5 60 nvim --headless -u NONE -i NONE --cmd "set rtp+=$PLUGIN_DIR" \
    -c "luafile $test_file" -c "cquit 2" </dev/null | tee -a "$WORK/nvim.out" || rc=$?
done
if [[ $rc -eq 0 ]]; then
  # one summary for all files, as the last line
  awk '/^neovim: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 } END { printf "neovim: %d passed, %d failed\n", p, f }' "$WORK/nvim.out"
  exit 0
fi

# Diagnostics, then the summary line again so the output still ends with it.
[[ $rc -eq 124 || $rc -eq 137 ]] && echo "run.sh: nvim timed out after 60 s" >&2
if [[ -f "$WORK/cache/nvim/lsp.log" ]]; then
  echo "--- lsp.log (bridge stderr and RPC client log), last 40 lines ---" >&2
  tail -n 40 "$WORK/cache/nvim/lsp.log" >&2
fi
summary="$(grep -E '^neovim: [0-9]+ passed, [0-9]+ failed$' "$WORK/nvim.out" | tail -n 1 || true)"
echo "${summary:-neovim: 0 passed, 1 failed}"
exit 1
