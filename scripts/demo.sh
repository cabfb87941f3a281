#!/usr/bin/env bash
# The Synod demo: a local consortium of 3 parties (threshold 2) on loopback,
# with the synthetic patient tables shipped in configs/sample. Every step is
# printed as the command a user would type.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${SYNOD_BIN:-$PWD/bin}"
BASE_PORT="${SYNOD_DEMO_PORT:-7401}"
DIR="$(mktemp -d -t synod-demo.XXXXXX)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "${KEEP_DEMO_DIR:-}" = "" ]; then rm -rf "$DIR"; else echo "kept $DIR"; fi
}
trap cleanup EXIT

run() { printf '\n$ %s\n' "$*" | sed "s|$BIN/||g; s|$DIR|\$DEMO|g"; "$@"; }

echo "== building"
go build -o "$BIN/" ./cmd/mpcnode ./cmd/mpcctl

echo "== a consortium of 3 parties, threshold 2, in \$DEMO=$DIR"
run "$BIN/mpcctl" consortium init --dir "$DIR" --parties 3 --threshold 2 --base-port "$BASE_PORT" --fast-blocks \
  --dataset 'patients=configs/sample/patients-party-{i}.csv'

echo
echo "== starting the nodes (logs in \$DEMO/party-N.log)"
for i in 1 2 3; do
  printf '$ mpcnode --config $DEMO/party-%d.yaml &\n' "$i"
  "$BIN/mpcnode" --config "$DIR/party-$i.yaml" >"$DIR/party-$i.log" 2>&1 &
  PIDS+=($!)
done

export SYNOD_CONFIG="$DIR/analyst.yaml"
for _ in $(seq 1 100); do
  if [ "$("$BIN/mpcctl" parties -o csv 2>/dev/null | grep -c ',true,')" = 3 ]; then break; fi
  sleep 0.2
done
run "$BIN/mpcctl" parties

echo
echo "== key generation: CRS, collective public key, relinearization and Galois keys, t-of-N shares"
run "$BIN/mpcctl" setup

QUERY=(--dataset patients --agg count --agg mean:age --agg mean:bmi --agg sum:diabetic --agg mean:systolic_bp --where 'age>=40')
COMPARE="$DIR/party-1.yaml,$DIR/party-2.yaml,$DIR/party-3.yaml"

echo
echo "== a query: encrypted result (decrypted by mpcctl with the analyst's key) beside the plaintext of the same query"
run "$BIN/mpcctl" query "${QUERY[@]}" --compare-plaintext "$COMPARE"

echo
echo "== party-3 stops; any 2 of 3 still decrypt (the result covers the data of the parties that answered)"
printf '$ kill <party-3>\n'
kill "${PIDS[2]}"; wait "${PIDS[2]}" 2>/dev/null || true; PIDS[2]=""
run "$BIN/mpcctl" query "${QUERY[@]}" --compare-plaintext "$COMPARE"

echo
echo "== party-2 stops too; below the threshold nothing is released"
printf '$ kill <party-2>\n'
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null || true; PIDS[1]=""
if run "$BIN/mpcctl" query "${QUERY[@]}"; then
  echo "unexpected: a query succeeded with 1 of 3 parties" >&2
  exit 1
fi
echo
echo "== demo complete"
