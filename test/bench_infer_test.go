package test

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/protocols"
)

const (
	predictParties  = 3
	predictRecords  = 100_000
	predictFeatures = 30
)

// writePredictData writes party i's dataset: predictRecords rows of
// predictFeatures standard normal features (clipped to [-4, 4]), and a
// schema declaring them.
func writePredictData(b *testing.B, dir string) (schemaPath, pattern string) {
	b.Helper()
	var sch strings.Builder
	sch.WriteString("datasets:\n  records:\n    columns:\n")
	var header []string
	for i := range predictFeatures {
		fmt.Fprintf(&sch, "      - {name: f%d, type: numeric, min: -4, max: 4}\n", i)
		header = append(header, fmt.Sprintf("f%d", i))
	}
	schemaPath = filepath.Join(dir, "schema.yaml")
	if err := os.WriteFile(schemaPath, []byte(sch.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	for p := 1; p <= predictParties; p++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("records-party-%d.csv", p)))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		w.WriteString(strings.Join(header, ",") + "\n")
		rng := rand.New(rand.NewPCG(uint64(p), 30))
		line := make([]byte, 0, 512)
		for range predictRecords {
			line = line[:0]
			for i := range predictFeatures {
				if i > 0 {
					line = append(line, ',')
				}
				line = strconv.AppendFloat(line, math.Max(-4, math.Min(4, rng.NormFloat64())), 'f', 4, 64)
			}
			line = append(line, '\n')
			w.Write(line)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	return schemaPath, filepath.Join(dir, "records-party-{i}.csv")
}

// BenchmarkPrivatePrediction: the logistic regression fixture (30
// features, sigmoid degree 31 on [-8, 8]) uploaded encrypted under the
// collective key of 3 parties (threshold 2, ckks-n14); then each party
// predicts its own 100,000 records at the same time (mpcctl predict: the
// party evaluates the encrypted weights on its records as plaintexts, 2
// parties key-switch every batch to a fresh key of that party, it decrypts
// and writes the predictions). Reported: records/s over the 300,000 records
// end to end (wall time of the three concurrent predictions), beside the
// floor: the same work (encode, evaluate, prepare, threshold key switch,
// decrypt of 3 x 13 batches) in one process with raw lattigo, as many
// workers as cores, no network, signatures or ledger. Target: >= 20,000
// records/s and within 2x of the floor.
func BenchmarkPrivatePrediction(b *testing.B) {
	dir := b.TempDir()
	schemaPath, pattern := writePredictData(b, dir)
	c := newPredictCluster(b, schemaPath, pattern)
	if out, err := c.ctl("setup"); err != nil {
		b.Fatalf("setup: %v\n%s", err, out)
	}
	modelPath := filepath.Join(repoRoot(), "configs/models/logreg.json")
	began := time.Now()
	if out, err := c.ctl("model", "upload", "--model", modelPath, "--name", "logreg", "-o", "json"); err != nil {
		b.Fatalf("upload: %v\n%s", err, out)
	}
	upload := time.Since(began)
	features := make([]string, predictFeatures)
	for i := range features {
		features[i] = fmt.Sprintf("f%d", i)
	}
	var total time.Duration
	for range b.N {
		began = time.Now()
		var wg sync.WaitGroup
		errs := make([]error, predictParties)
		for p := 1; p <= predictParties; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := c.ctl("predict", "--party-config", c.partyConfig(p), "--model", "logreg", "--dataset", "records",
					"--features", strings.Join(features, ","), "--file", "bench-predictions.csv", "-o", "json")
				if err != nil {
					errs[p-1] = fmt.Errorf("party-%d: %v: %s", p, err, out)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		total += time.Since(began)
	}
	b.StopTimer()
	perRun := total / time.Duration(b.N)
	rate := float64(predictParties*predictRecords) / perRun.Seconds()

	floor, err := predictionFloor(predictParties * predictRecords)
	if err != nil {
		b.Fatal(err)
	}
	floorRate := float64(predictParties*predictRecords) / floor.Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(floorRate, "floor-records/s")
	b.ReportMetric(perRun.Seconds()/floor.Seconds(), "x-floor")
	b.Logf("private prediction, logistic regression 30 features, %d parties x %d records, ckks-n14, GOMAXPROCS=%d:", predictParties, predictRecords, runtime.GOMAXPROCS(0))
	b.Logf("  upload of the encrypted model (encrypt + store at 3 parties + chain): %s", upload.Round(time.Millisecond))
	b.Logf("  end to end (3 concurrent mpcctl predict): %s, %.0f records/s", perRun.Round(time.Millisecond), rate)
	b.Logf("  floor (same work in process, raw lattigo): %s, %.0f records/s; ratio %.2fx", floor.Round(time.Millisecond), floorRate, perRun.Seconds()/floor.Seconds())
}

// newPredictCluster is newCluster with the benchmark's dataset and schema.
func newPredictCluster(b *testing.B, schemaPath, pattern string) *cluster {
	b.Helper()
	c := &cluster{t: b, dir: b.TempDir(), n: predictParties}
	c.analyst = filepath.Join(c.dir, "analyst.yaml")
	args := []string{"consortium", "init", "--dir", c.dir, "--parties", fmt.Sprint(predictParties), "--threshold", "2",
		"--base-port", fmt.Sprint(freeBasePort(b, predictParties)), "--fast-blocks", "--parameters", "ckks-n14",
		"--schema", schemaPath, "--dataset", "records=" + pattern}
	if out, err := c.ctl(args...); err != nil {
		b.Fatalf("consortium init: %v\n%s", err, out)
	}
	for i := 1; i <= predictParties; i++ {
		c.start(i, "mpcnode")
	}
	b.Cleanup(c.stopAll)
	c.waitReachable(predictParties)
	return c
}

// predictionFloor runs the prediction's cryptographic work for records
// records in one process: per batch of 8192, encoding of the 30 feature
// plaintexts, evaluation against the encrypted weights, preparation for
// release, two flooded public-key-switch shares and their combination, and
// decryption; batches on as many workers as cores. Key generation and model
// encryption are not timed.
func predictionFloor(records int) (time.Duration, error) {
	p, err := engine.ParametersByName("ckks-n14")
	if err != nil {
		return 0, err
	}
	parties := []protocols.PartyID{"p1", "p2", "p3"}
	res, err := protocols.RunSetupInProcess(p, parties, 2, nil)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(repoRoot(), "configs/models/logreg.json"))
	if err != nil {
		return 0, err
	}
	m, err := model.ParseJSON(b)
	if err != nil {
		return 0, err
	}
	em, err := model.EncryptModelForPrediction(p, res["p1"].PublicKey, m)
	if err != nil {
		return 0, err
	}
	pl, err := em.Plan(p)
	if err != nil {
		return 0, err
	}
	evk := rlwe.NewMemEvaluationKeySet(res["p1"].RelinearizationKey)
	sk, target := engine.GenKeyPair(p)
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([][]float64, pl.RecordsPerBatch)
	for j := range batch {
		batch[j] = make([]float64, predictFeatures)
		for i := range batch[j] {
			batch[j][i] = math.Max(-4, math.Min(4, rng.NormFloat64()))
		}
	}
	perParty := (records/predictParties + pl.RecordsPerBatch - 1) / pl.RecordsPerBatch
	jobs := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if err := floorBatch(p, evk, em, pl, batch, res, parties, target, sk); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	for j := range predictParties * perParty {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	took := time.Since(start)
	select {
	case err := <-errc:
		return 0, err
	default:
	}
	return took, nil
}

func floorBatch(p engine.Parameters, evk rlwe.EvaluationKeySet, em *model.EncryptedModel, pl *model.Plan, batch [][]float64,
	res map[protocols.PartyID]*protocols.SetupResult, parties []protocols.PartyID, target *rlwe.PublicKey, sk *rlwe.SecretKey) error {
	outs, err := model.EvaluateRecords(p, evk, em, batch)
	if err != nil {
		return err
	}
	if err := model.PrepareRelease(p, outs); err != nil {
		return err
	}
	req := protocols.KeySwitchRequest{Session: "floor", Group: parties[:2], Target: target, Ciphertext: outs[0]}
	agg, err := protocols.NewKeySwitchAggregator(p, req)
	if err != nil {
		return err
	}
	for _, id := range req.Group {
		msg, err := protocols.KeySwitchShare(p, id, parties, 2, res[id].ThresholdShare, req, p.FloodingSigma, "")
		if err != nil {
			return err
		}
		if _, err := agg.Step(msg); err != nil {
			return err
		}
	}
	_, err = engine.DecryptVector(p, sk, agg.Result(), len(batch))
	return err
}

// BenchmarkPredictionFloor is the in-process floor of BenchmarkPrivatePrediction
// alone (no cluster, 3 x 100,000 records), for profiling the cryptographic
// work: go test -run '^$' -bench PredictionFloor -benchtime 1x -cpuprofile cpu.out ./test/
func BenchmarkPredictionFloor(b *testing.B) {
	const records = predictParties * predictRecords
	var total time.Duration
	for range b.N {
		took, err := predictionFloor(records)
		if err != nil {
			b.Fatal(err)
		}
		total += took
	}
	b.ReportMetric(float64(records)/(total.Seconds()/float64(b.N)), "records/s")
}
