package analyst

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/keystore"
	"github.com/synod-mpc/synod/parties/query"
)

// directTolerance bounds the error of a fresh encryption decrypted at once
// (no key switch, no flooding): the engine's round-trip tests measure 2.4e-6
// for inputs up to 1e9; the inputs here are below 1e5.
const directTolerance = 1e-5

func testParams(t *testing.T) engine.Parameters {
	t.Helper()
	p, err := engine.ParametersByName("ckks-n13")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResultsRoundTrip(t *testing.T) {
	r := Results{DataDir: t.TempDir()}
	meta := &synodv1.ResultMetadata{Session: "s-1", Parameters: "ckks-n13", Contributors: []string{"party-1", "party-2"},
		Receipt: &synodv1.Receipt{Height: 7, TxHash: []byte{1, 2, 3}, Certificate: []byte{4, 5}}}
	ct := []byte("ciphertext bytes")
	if err := r.Save(meta, ct); err != nil {
		t.Fatal(err)
	}
	gotMeta, gotCt, err := r.Load("s-1")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(gotMeta, meta) || !bytes.Equal(gotCt, ct) {
		t.Fatalf("loaded %v %q, saved %v %q", gotMeta, gotCt, meta, ct)
	}
	if _, _, err := r.Load("s-2"); err == nil || !strings.Contains(err.Error(), "no result of session s-2 here") {
		t.Fatalf("loading an unknown session: %v", err)
	}
}

// The analyst's RLWE secret key is made once, sealed at rest, and read back
// on later calls; a key that does not open is an error, not replaced.
func TestRLWEKeySealedAndKept(t *testing.T) {
	p := testParams(t)
	t.Setenv("SYNOD_TEST_PASSPHRASE", "correct horse")
	cfg := &config.Analyst{DataDir: filepath.Join(t.TempDir(), "data"), Keystore: config.KeystoreSource{PassphraseEnv: "SYNOD_TEST_PASSPHRASE"}}
	sk1, pk1, err := RLWEKey(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, "rlwe-ckks-n13.sealed")
	stored, err := os.ReadFile(path)
	if err != nil || !keystore.IsSealed(stored) {
		t.Fatalf("key file %s: sealed %t, %v", path, keystore.IsSealed(stored), err)
	}
	sk2, pk2, err := RLWEKey(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := sk1.MarshalBinary()
	b2, _ := sk2.MarshalBinary()
	if !bytes.Equal(b1, b2) {
		t.Fatal("a second call made another secret key")
	}
	// Both public keys are keys of the one secret key.
	want := []float64{1, 2, 3, 40000}
	for i, pk := range []*engine.PublicKey{pk1, pk2} {
		ct, err := engine.EncryptVector(p, pk, want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := engine.DecryptVector(p, sk1, ct, len(want))
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if math.Abs(got[j]-want[j]) > directTolerance {
				t.Fatalf("public key %d: slot %d decrypts to %g, want %g", i+1, j, got[j], want[j])
			}
		}
	}
	t.Setenv("SYNOD_TEST_PASSPHRASE", "wrong")
	if _, _, err := RLWEKey(cfg, p); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("with the wrong passphrase: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, stored) {
		t.Fatal("the key file changed after a failed open")
	}
}

// Follow hands every event to the callback with its time since the first,
// stops at the final one, and returns a stream error as it is.
func TestFollow(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	events := []*synodv1.Event{
		{Stage: "propose", TimeUnixNano: base},
		{Stage: "evaluate", TimeUnixNano: base + 250e6},
		{Stage: "done", TimeUnixNano: base + 1500e6, Final: true, Session: "s-1"},
		{Stage: "after the end", TimeUnixNano: base + 2000e6},
	}
	next := 0
	recv := func() (*synodv1.Event, error) {
		next++
		return events[next-1], nil
	}
	var seen []string
	var elapsed []time.Duration
	ev, took, err := Follow(recv, func(ev *synodv1.Event, d time.Duration) {
		seen = append(seen, ev.GetStage())
		elapsed = append(elapsed, d)
	})
	if err != nil || ev != events[2] || took != 1500*time.Millisecond {
		t.Fatalf("Follow: %v, %s, %v", ev, took, err)
	}
	if strings.Join(seen, ",") != "propose,evaluate,done" || elapsed[1] != 250*time.Millisecond || next != 3 {
		t.Fatalf("saw %v at %v after %d reads", seen, elapsed, next)
	}
	broken := errors.New("stream broken")
	if _, _, err := Follow(func() (*synodv1.Event, error) { return nil, broken }, nil); err != broken {
		t.Fatalf("stream error: %v", err)
	}
}

// encryptedSession is a session whose result is slots encrypted under the
// analyst's key, as a key switch would leave it (without its noise).
func encryptedSession(t *testing.T, meta *synodv1.ResultMetadata, slots []float64) *Session {
	t.Helper()
	p := testParams(t)
	sk, pk := engine.GenKeyPair(p)
	ct, err := engine.EncryptVector(p, pk, slots)
	if err != nil {
		t.Fatal(err)
	}
	b, err := engine.MarshalCiphertext(ct)
	if err != nil {
		t.Fatal(err)
	}
	return &Session{Params: p, SecretKey: sk, Meta: meta, Ciphertext: b}
}

// A query's result decrypts to the cells query.Finish computes from the
// same sums in the clear, and a group marked suppressed is suppressed.
func TestSessionCells(t *testing.T) {
	spec, err := query.CompileSQL("SELECT sex, COUNT(*), AVG(bmi), SUM(age) FROM patients GROUP BY sex IN (0, 1)")
	if err != nil {
		t.Fatal(err)
	}
	n := query.CellCount(spec)
	rng := rand.New(rand.NewPCG(1, 2))
	slots := make([]float64, n)
	for i := range slots {
		slots[i] = float64(1 + rng.IntN(50000))
	}
	groups, per := query.GroupShape(spec)
	if groups != 2 || per*groups != n {
		t.Fatalf("layout: %d groups of %d cells for %d slots", groups, per, n)
	}
	meta := &synodv1.ResultMetadata{Spec: spec}
	for i := range n {
		meta.Slots = append(meta.Slots, &synodv1.ResultSlot{Suppressed: i/per == 1})
	}
	got, err := encryptedSession(t, meta, slots).Cells()
	if err != nil {
		t.Fatal(err)
	}
	want, err := query.Finish(spec, slots)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%d cells, want %d", len(got), len(want))
	}
	compared, suppressed := 0, 0
	for i := range want {
		g := got[i]
		inSecond := len(want[i].Group) > 0 && want[i].Group["sex"] == 1
		if g.Name != want[i].Name || g.Suppressed != inSecond {
			t.Errorf("cell %d: %+v, want %+v (suppressed %t)", i, g, want[i], inSecond)
			continue
		}
		if g.Suppressed {
			suppressed++
			continue
		}
		compared++
		if math.Abs(g.Value-want[i].Value) > directTolerance*max(1, math.Abs(want[i].Value)) {
			t.Errorf("cell %d %s: %g, plaintext %g", i, g.Name, g.Value, want[i].Value)
		}
	}
	if compared == 0 || suppressed == 0 {
		t.Fatalf("%d cells compared, %d suppressed: the test checks nothing", compared, suppressed)
	}
}

// A validation's result decrypts to the metrics of the same cells in the
// clear; a result for another model or another layout is refused.
func TestSessionMetrics(t *testing.T) {
	bins := model.Bins{ROC: 10, Calibration: 5}
	rng := rand.New(rand.NewPCG(3, 4))
	scores, labels := make([]float64, 500), make([]float64, 500)
	for i := range scores {
		scores[i] = rng.Float64()
		if rng.Float64() < scores[i] {
			labels[i] = 1
		}
	}
	cells := make([]float64, bins.Cells())
	if err := bins.BinScores(cells, scores, labels); err != nil {
		t.Fatal(err)
	}
	modelJSON := []byte(`{"name":"m"}`)
	meta := &synodv1.ResultMetadata{Spec: &synodv1.QuerySpec{Inference: &synodv1.Inference{Model: modelJSON}},
		Slots: make([]*synodv1.ResultSlot, bins.Cells())}
	s := encryptedSession(t, meta, cells)
	got, err := s.Metrics(modelJSON, bins)
	if err != nil {
		t.Fatal(err)
	}
	want, err := bins.Metrics(cells)
	if err != nil {
		t.Fatal(err)
	}
	// Counts are rounded to integers, so they and what derives from them
	// only (accuracy, AUC) are exact.
	if got.Records != want.Records || got.Positives != want.Positives || got.TruePositives != want.TruePositives ||
		got.FalseNegatives != want.FalseNegatives || got.Accuracy != want.Accuracy || got.AUC != want.AUC {
		t.Fatalf("metrics %+v, plaintext %+v", got, want)
	}
	if math.Abs(got.Brier-want.Brier) > directTolerance {
		t.Fatalf("brier %g, plaintext %g", got.Brier, want.Brier)
	}
	if _, err := s.Metrics([]byte(`{"name":"other"}`), bins); err == nil || !strings.Contains(err.Error(), "another validation") {
		t.Fatalf("another model: %v", err)
	}
	if _, err := s.Metrics(modelJSON, model.Bins{ROC: 20, Calibration: 5}); err == nil || !strings.Contains(err.Error(), "slots") {
		t.Fatalf("another layout: %v", err)
	}
}
