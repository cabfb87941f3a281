package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/glm"
	"github.com/synod-mpc/synod/engine/train"
	"github.com/synod-mpc/synod/protocols"
	"github.com/synod-mpc/synod/protocols/session"
)

// The training benchmarks (make bench-train): 3 parties x 100,000 rows x
// 30 features (standard normal, clipped to [-4, 4]), a linear label t and a
// binary label y drawn from a logistic model, each beside the in-process
// floor of the same lattigo work.
const (
	trainParties  = 3
	trainRows     = 100_000
	trainFeatures = 30
)

func writeTrainData(b *testing.B, dir string) (schemaPath, pattern string, features []string) {
	b.Helper()
	var sch strings.Builder
	sch.WriteString("datasets:\n  records:\n    columns:\n")
	for i := range trainFeatures {
		fmt.Fprintf(&sch, "      - {name: f%d, type: numeric, min: -4, max: 4}\n", i)
		features = append(features, fmt.Sprintf("f%d", i))
	}
	sch.WriteString("      - {name: t, type: numeric, min: -100, max: 100}\n      - {name: y, type: boolean}\n")
	schemaPath = filepath.Join(dir, "schema.yaml")
	if err := os.WriteFile(schemaPath, []byte(sch.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	truth := rand.New(rand.NewPCG(7, 7))
	beta := make([]float64, trainFeatures)
	for i := range beta {
		beta[i] = truth.NormFloat64() * 0.5
	}
	for p := 1; p <= trainParties; p++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("records-party-%d.csv", p)))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		w.WriteString(strings.Join(features, ",") + ",t,y\n")
		rng := rand.New(rand.NewPCG(uint64(p), 31))
		line := make([]byte, 0, 512)
		x := make([]float64, trainFeatures)
		for range trainRows {
			line = line[:0]
			z := 0.0
			for i := range x {
				x[i] = math.Round(math.Max(-4, math.Min(4, rng.NormFloat64()))*1e4) / 1e4
				z += beta[i] * x[i]
				line = strconv.AppendFloat(line, x[i], 'f', 4, 64)
				line = append(line, ',')
			}
			t := math.Max(-100, math.Min(100, 3*z+rng.NormFloat64()))
			y := 0
			if rng.Float64() < 1/(1+math.Exp(-z)) {
				y = 1
			}
			line = strconv.AppendFloat(line, t, 'f', 4, 64)
			line = append(line, ',', byte('0'+y), '\n')
			w.Write(line)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	return schemaPath, filepath.Join(dir, "records-party-{i}.csv"), features
}

func newTrainCluster(b *testing.B, params, schemaPath, pattern string) *cluster {
	b.Helper()
	c := &cluster{t: b, dir: b.TempDir(), n: trainParties}
	c.analyst = filepath.Join(c.dir, "analyst.yaml")
	args := []string{"consortium", "init", "--dir", c.dir, "--parties", fmt.Sprint(trainParties), "--threshold", "2",
		"--base-port", fmt.Sprint(freeBasePort(b, trainParties)), "--fast-blocks", "--parameters", params,
		"--schema", schemaPath, "--dataset", "records=" + pattern}
	if out, err := c.ctl(args...); err != nil {
		b.Fatalf("consortium init: %v\n%s", err, out)
	}
	for i := 1; i <= trainParties; i++ {
		c.start(i, "mpcnode")
	}
	b.Cleanup(c.stopAll)
	c.waitReachable(trainParties)
	if out, err := c.ctl("setup"); err != nil {
		b.Fatalf("setup: %v\n%s", err, out)
	}
	return c
}

type trainBench struct {
	Session       string  `json:"session"`
	Seconds       float64 `json:"session_seconds"`
	LedgerSeconds float64 `json:"ledger_seconds"`
	Coefficients  []struct {
		Scaled float64 `json:"scaled"`
	} `json:"coefficients"`
}

func (c *cluster) sentBytes(b *testing.B) []uint64 {
	ps, err := c.parties()
	if err != nil {
		b.Fatal(err)
	}
	out := make([]uint64, len(ps))
	for i, p := range ps {
		out[i] = p.BytesSent
	}
	return out
}

// BenchmarkTrainExactLinear: exact linear regression of t on the 30
// features (one round: every party's 528 statistics encrypted, summed,
// key-switched to the analyst, solved). Reported: the session without its
// two chain commits, beside the floor (every party's statistics, their
// encryption, the sum, two flooded key-switch shares, the decryption and
// the solve, in one process). Target: < 2 s excluding commits.
func BenchmarkTrainExactLinear(b *testing.B) {
	dir := b.TempDir()
	schemaPath, pattern, features := writeTrainData(b, dir)
	c := newTrainCluster(b, "ckks-n14", schemaPath, pattern)
	var session, ledger time.Duration
	var whole time.Duration
	for range b.N {
		began := time.Now()
		out, err := c.ctl("train", "-o", "json", "--schema", schemaPath, "--dataset", "records", "--label", "t", "--features", strings.Join(features, ","), "--model", "linear")
		if err != nil {
			b.Fatalf("train: %v\n%s", err, out)
		}
		whole += time.Since(began)
		var r trainBench
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			b.Fatal(err)
		}
		session += time.Duration(r.Seconds * float64(time.Second))
		ledger += time.Duration(r.LedgerSeconds * float64(time.Second))
	}
	b.StopTimer()
	n := time.Duration(b.N)
	floor, err := exactLinearFloor(dir, features)
	if err != nil {
		b.Fatal(err)
	}
	noChain := (session - ledger) / n
	b.ReportMetric(noChain.Seconds(), "s-without-chain")
	b.ReportMetric(floor.Seconds(), "floor-s")
	b.ReportMetric(noChain.Seconds()/floor.Seconds(), "x-floor")
	fmt.Fprintf(os.Stdout, "exact linear regression, %d parties x %d rows x %d features, ckks-n14, GOMAXPROCS=%d:\n", trainParties, trainRows, trainFeatures, runtime.GOMAXPROCS(0))
	fmt.Fprintf(os.Stdout, "  session %s, of which chain %s; without the chain %s; whole mpcctl train %s\n",
		(session / n).Round(time.Millisecond), (ledger / n).Round(time.Millisecond), noChain.Round(time.Millisecond), (whole / n).Round(time.Millisecond))
	fmt.Fprintf(os.Stdout, "  floor (same work in one process, raw lattigo and engine/glm): %s; ratio %.2fx\n", floor.Round(time.Millisecond), noChain.Seconds()/floor.Seconds())
}

// exactLinearFloor does the exact linear round's work in one process.
func exactLinearFloor(dir string, features []string) (time.Duration, error) {
	p, err := engine.ParametersByName("ckks-n14")
	if err != nil {
		return 0, err
	}
	ids := []protocols.PartyID{"p1", "p2", "p3"}
	res, err := protocols.RunSetupInProcess(p, ids, 2, nil)
	if err != nil {
		return 0, err
	}
	s := glm.Scaling{Label: glm.Column{Name: "t", Min: -100, Max: 100}}
	for _, f := range features {
		s.Features = append(s.Features, glm.Column{Name: f, Min: -4, Max: 4})
	}
	tables := make([][][]float64, trainParties)
	for i := range tables {
		cols, err := readCSVColumns(filepath.Join(dir, fmt.Sprintf("records-party-%d.csv", i+1)), append(features, "t"))
		if err != nil {
			return 0, err
		}
		tables[i] = cols
	}
	sk, target := engine.GenKeyPair(p)
	start := time.Now()
	var cts []*rlwe.Ciphertext
	for _, cols := range tables {
		stats, err := glm.LinearStats(cols[:len(features)], cols[len(features)], s)
		if err != nil {
			return 0, err
		}
		ct, err := engine.EncryptVector(p, res["p1"].PublicKey, stats)
		if err != nil {
			return 0, err
		}
		cts = append(cts, ct)
	}
	sum, err := engine.Sum(p, cts)
	if err != nil {
		return 0, err
	}
	req := protocols.KeySwitchRequest{Session: "floor", Group: ids[:2], Target: target, Ciphertext: sum}
	agg, err := protocols.NewKeySwitchAggregator(p, req)
	if err != nil {
		return 0, err
	}
	for _, id := range req.Group {
		msg, err := protocols.KeySwitchShare(p, id, ids, 2, res[id].ThresholdShare, req, p.FloodingSigma, "")
		if err != nil {
			return 0, err
		}
		if _, err := agg.Step(msg); err != nil {
			return 0, err
		}
	}
	pp := len(features) + 1
	stats, err := engine.DecryptVector(p, sk, agg.Result(), glm.StatsLen(glm.Linear, pp))
	if err != nil {
		return 0, err
	}
	if _, err := glm.SolveLinear(stats, pp, 0); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func readCSVColumns(path string, names []string) ([][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sc.Scan()
	header := strings.Split(sc.Text(), ",")
	idx := make([]int, len(names))
	for i, n := range names {
		idx[i] = -1
		for j, h := range header {
			if h == n {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return nil, fmt.Errorf("%s: no column %s", path, n)
		}
	}
	out := make([][]float64, len(names))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ",")
		for i, j := range idx {
			v, err := strconv.ParseFloat(fields[j], 64)
			if err != nil {
				return nil, err
			}
			out[i] = append(out[i], v)
		}
	}
	return out, sc.Err()
}

// BenchmarkTrainEncryptedLogistic: encrypted logistic regression of y on
// the 30 features, 10 gradient steps, on ckks-n14 (the plan that fits its
// 7 levels: lambda 8, a degree-3 sigmoid). Reported: the session time and
// per iteration, bytes per party, beside the floor: the same lattigo work
// in one process (every party's gradient circuit, the combination, the
// threshold refresh of every coefficient by two parties, the update, the
// final packing and key switch).
func BenchmarkTrainEncryptedLogistic(b *testing.B) {
	const iterations, lambda = 10, 8.0
	dir := b.TempDir()
	schemaPath, pattern, features := writeTrainData(b, dir)
	c := newTrainCluster(b, "ckks-n14", schemaPath, pattern)
	before := c.sentBytes(b)
	var session, ledger time.Duration
	for range b.N {
		out, err := c.ctl("train", "-o", "json", "--schema", schemaPath, "--dataset", "records", "--label", "y", "--features", strings.Join(features, ","),
			"--model", "logistic", "--mode", "encrypted", "--l2", fmt.Sprint(lambda), "--iterations", fmt.Sprint(iterations))
		if err != nil {
			b.Fatalf("train: %v\n%s", err, out)
		}
		var r trainBench
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			b.Fatal(err)
		}
		session += time.Duration(r.Seconds * float64(time.Second))
		ledger += time.Duration(r.LedgerSeconds * float64(time.Second))
	}
	b.StopTimer()
	after := c.sentBytes(b)
	n := time.Duration(b.N)
	floor, err := encryptedLogisticFloor(dir, features, lambda, iterations)
	if err != nil {
		b.Fatal(err)
	}
	per := session / n
	b.ReportMetric(per.Seconds(), "s/op-session")
	b.ReportMetric(floor.Seconds(), "floor-s")
	b.ReportMetric(per.Seconds()/floor.Seconds(), "x-floor")
	fmt.Fprintf(os.Stdout, "encrypted logistic regression, %d parties x %d rows x %d features, %d iterations, lambda %g, ckks-n14, GOMAXPROCS=%d:\n",
		trainParties, trainRows, trainFeatures, iterations, lambda, runtime.GOMAXPROCS(0))
	fmt.Fprintf(os.Stdout, "  session %s (%s per iteration), of which chain %s; %d refreshes per iteration\n",
		per.Round(time.Millisecond), (per / iterations).Round(time.Millisecond), (ledger / n).Round(time.Millisecond), trainFeatures+1)
	for i := range after {
		fmt.Fprintf(os.Stdout, "  party-%d sent %.1f MB per training\n", i+1, float64(after[i]-before[i])/float64(b.N)/1e6)
	}
	fmt.Fprintf(os.Stdout, "  floor (same work in one process): %s; ratio %.2fx\n", floor.Round(time.Millisecond), per.Seconds()/floor.Seconds())
}

// encryptedLogisticFloor runs the encrypted training's lattigo work in one
// process, the parties' gradients on as many workers as cores.
func encryptedLogisticFloor(dir string, features []string, lambda float64, iterations int) (time.Duration, error) {
	p, err := engine.ParametersByName("ckks-n14")
	if err != nil {
		return 0, err
	}
	ids := []protocols.PartyID{"p1", "p2", "p3"}
	res, err := protocols.RunSetupInProcess(p, ids, 2, nil)
	if err != nil {
		return 0, err
	}
	s := glm.Scaling{Label: glm.Column{Name: "y", Min: 0, Max: 1}}
	for _, f := range features {
		s.Features = append(s.Features, glm.Column{Name: f, Min: -4, Max: 4})
	}
	xs := make([][][]float64, trainParties)
	ys := make([][]float64, trainParties)
	for i := range xs {
		cols, err := readCSVColumns(filepath.Join(dir, fmt.Sprintf("records-party-%d.csv", i+1)), append(features, "y"))
		if err != nil {
			return 0, err
		}
		if xs[i], ys[i], err = s.Scale(glm.Logistic, cols[:len(features)], cols[len(features)]); err != nil {
			return 0, err
		}
	}
	tr := &synodv1.Training{Model: synodv1.Training_LOGISTIC, Features: features, L2: lambda, Iterations: uint32(iterations)}
	pl, err := train.NewPlan(p, session.TrainSpec(tr, trainParties, trainParties*trainRows))
	if err != nil {
		return 0, err
	}
	pk := res["p1"].PublicKey
	evk := rlwe.NewMemEvaluationKeySet(res["p1"].RelinearizationKey)
	sk, target := engine.GenKeyPair(p)
	start := time.Now()
	st, err := pl.InitialModel(p, pk)
	if err != nil {
		return 0, err
	}
	for it := range iterations {
		grads := make([][]*rlwe.Ciphertext, trainParties)
		for i := range grads {
			if grads[i], err = pl.Gradient(p, evk, st.Point(), xs[i], ys[i]); err != nil {
				return 0, err
			}
		}
		x, err := pl.Combine(p, st, grads)
		if err != nil {
			return 0, err
		}
		req := protocols.RefreshRequest{Session: "floor", Round: uint32(it + 1), Group: ids[:2], Transform: protocols.TransformSlotMean, Ciphertexts: x}
		agg, err := protocols.NewRefreshAggregator(p, req)
		if err != nil {
			return 0, err
		}
		for _, id := range req.Group {
			msg, err := protocols.RefreshShare(p, id, ids, 2, res[id].ThresholdShare, req, "")
			if err != nil {
				return 0, err
			}
			if _, err := agg.Step(msg); err != nil {
				return 0, err
			}
		}
		if err := pl.Update(p, st, agg.Result()); err != nil {
			return 0, err
		}
	}
	packed, err := train.PackForRelease(p, st.W)
	if err != nil {
		return 0, err
	}
	req := protocols.KeySwitchRequest{Session: "floor", Group: ids[:2], Target: target, Ciphertext: packed}
	agg, err := protocols.NewKeySwitchAggregator(p, req)
	if err != nil {
		return 0, err
	}
	for _, id := range req.Group {
		msg, err := protocols.KeySwitchShare(p, id, ids, 2, res[id].ThresholdShare, req, p.FloodingSigma, "")
		if err != nil {
			return 0, err
		}
		if _, err := agg.Step(msg); err != nil {
			return 0, err
		}
	}
	if _, err := engine.DecryptVector(p, sk, agg.Result(), pl.Coefficients); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
