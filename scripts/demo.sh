#!/usr/bin/env bash
# The Synod demo: a local consortium of 4 parties (threshold 2) on loopback,
# each running a validator of the consortium chain (4 validators tolerate
# one fault), with the synthetic patient tables shipped in configs/sample.
# Every step is printed as the command a user would type.
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

echo "== a consortium of 4 parties, threshold 2, in \$DEMO=$DIR"
run "$BIN/mpcctl" consortium init --dir "$DIR" --parties 4 --threshold 2 --base-port "$BASE_PORT" --fast-blocks \
  --dataset 'patients=configs/sample/patients-party-{i}.csv'

echo
echo "== starting the nodes (logs in \$DEMO/party-N.log)"
for i in 1 2 3 4; do
  printf '$ mpcnode --config $DEMO/party-%d.yaml &\n' "$i"
  "$BIN/mpcnode" --config "$DIR/party-$i.yaml" >"$DIR/party-$i.log" 2>&1 &
  PIDS+=($!)
done

export SYNOD_CONFIG="$DIR/analyst.yaml"
for _ in $(seq 1 100); do
  if [ "$("$BIN/mpcctl" parties -o csv 2>/dev/null | grep -c ',true,')" = 4 ]; then break; fi
  sleep 0.2
done
run "$BIN/mpcctl" parties

echo
echo "== key generation: threshold-BLS DKG, CRS from its signature, collective public, relinearization and Galois keys, t-of-N shares"
run "$BIN/mpcctl" setup

QUERY=(--dataset patients --agg count --agg mean:age --agg mean:bmi --agg sum:diabetic --agg mean:systolic_bp --where 'age>=40')
COMPARE="$DIR/party-1.yaml,$DIR/party-2.yaml,$DIR/party-3.yaml,$DIR/party-4.yaml"

echo
echo "== a query: approved by a threshold signature recorded on the chain, encrypted result"
echo "   (decrypted by mpcctl with the analyst's key) beside the plaintext of the same query"
run "$BIN/mpcctl" query "${QUERY[@]}" --compare-plaintext "$COMPARE"
# mpcctl keeps every result it received, with its receipt, in the analyst's data dir.
SESSION="$(basename "$(ls -t "$DIR"/analyst/data/results/*.json | head -1)" .json)"

echo
echo "== the receipt, checked from the consortium file alone (light client from the genesis)"
run "$BIN/mpcctl" audit verify "$SESSION"
run "$BIN/mpcctl" audit log

echo
echo "== SQL with GROUP BY and differential privacy: each party adds a share of Laplace noise"
echo "   under encryption (epsilon 1 over the released cells), so no one knows the total noise"
run "$BIN/mpcctl" query --epsilon 1 --compare-plaintext "$COMPARE" \
  "SELECT sex, COUNT(*), AVG(bmi) FROM patients WHERE age BETWEEN 40 AND 70 GROUP BY sex IN (0, 1)"

echo
echo "== training together: logistic regression of diabetes on age, BMI and blood pressure over every"
echo "   party's rows (exact mode: the parties' sufficient statistics are summed under encryption and"
echo "   released to the analyst each Newton round), beside a fit on the pooled rows; then the trained"
echo "   model validated on every party's records"
run "$BIN/mpcctl" train --dataset patients --label diabetic --features age,bmi,systolic_bp --model logistic \
  --l2 0.0001 --out "$DIR/diabetes.json" --compare-plaintext "$COMPARE"
run "$BIN/mpcctl" infer --model "$DIR/diabetes.json" --dataset patients --label diabetic --features age,bmi,systolic_bp

echo
echo "== party-4 stops: the threshold key (2 of 4) and the chain (3 of 4 validators) still work"
printf '$ kill <party-4>\n'
kill "${PIDS[3]}"; wait "${PIDS[3]}" 2>/dev/null || true; PIDS[3]=""
run "$BIN/mpcctl" query "${QUERY[@]}" --compare-plaintext "$COMPARE"

echo
echo "== party-3 and party-2 stop too; below the threshold nothing is released"
printf '$ kill <party-3> <party-2>\n'
kill "${PIDS[2]}" "${PIDS[1]}"; wait "${PIDS[2]}" "${PIDS[1]}" 2>/dev/null || true; PIDS[2]=""; PIDS[1]=""
if run "$BIN/mpcctl" query "${QUERY[@]}"; then
  echo "unexpected: a query succeeded with 1 of 4 parties" >&2
  exit 1
fi
echo
echo "== demo complete"
