package test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/protocols"
)

// BenchmarkConsortium measures, for N=3 and N=5 parties on loopback (one
// mpcnode process each): the end-to-end setup time, query latency and the
// bytes each party sent, beside the raw lattigo cost of the same work in one
// process with no network (the floor). Run with -benchtime 1x (make bench).
func BenchmarkConsortium(b *testing.B) {
	params, err := engine.ParametersByName(engine.DefaultParameters)
	if err != nil {
		b.Fatal(err)
	}
	// N=3 runs 3 validators, N=5 five; both commit with every party up.
	for _, size := range []struct{ n, t int }{{3, 2}, {5, 3}} {
		b.Run(fmt.Sprintf("N=%d,t=%d", size.n, size.t), func(b *testing.B) {
			for range b.N {
				benchConsortium(b, params, size.n, size.t)
			}
		})
	}
}

func benchConsortium(b *testing.B, params engine.Parameters, n, t int) {
	c := newCluster(b, n, t, params.Name)
	before, err := c.parties()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	out, err := c.ctl("setup", "-o", "json")
	if err != nil {
		b.Fatalf("setup: %v\n%s", err, out)
	}
	setupCommand := time.Since(start)
	var setupJSON struct {
		Seconds float64 `json:"session_seconds"`
	}
	if err := json.Unmarshal([]byte(out), &setupJSON); err != nil || setupJSON.Seconds <= 0 {
		b.Fatalf("setup output %q: %v", out, err)
	}
	setup := time.Duration(setupJSON.Seconds * float64(time.Second))
	afterSetup, err := c.parties()
	if err != nil {
		b.Fatal(err)
	}
	var lat, sess, led []time.Duration
	for range 5 {
		start := time.Now()
		q, err := c.query(demoQuery...)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		sess = append(sess, time.Duration(q.Seconds*float64(time.Second)))
		led = append(led, time.Duration(q.Ledger*float64(time.Second)))
	}
	slices.Sort(lat)
	slices.Sort(sess)
	slices.Sort(led)
	query, session, ledgerWait := lat[len(lat)/2], sess[len(sess)/2], led[len(led)/2]
	afterQuery, err := c.parties()
	if err != nil {
		b.Fatal(err)
	}
	c.stopAll()

	floorSetup, err := protocols.FloorSetup(params, n, t, params.GaloisElements())
	if err != nil {
		b.Fatal(err)
	}
	derivation, err := protocols.FloorDerivation(params, n, params.GaloisElements())
	if err != nil {
		b.Fatal(err)
	}
	floorEveryParty := floorSetup + time.Duration(n-1)*derivation
	floorQuery, err := floorQuery(params, []float64{812, 43210.5, 36.0, 21456.3}, n, t)
	if err != nil {
		b.Fatal(err)
	}
	var setupBytes, queryBytes []uint64
	for i := range before {
		setupBytes = append(setupBytes, afterSetup[i].BytesSent-before[i].BytesSent)
		queryBytes = append(queryBytes, (afterQuery[i].BytesSent-afterSetup[i].BytesSent)/5)
	}
	b.ReportMetric(setup.Seconds(), "setup-s")
	b.ReportMetric(floorSetup.Seconds(), "setup-floor-s")
	b.ReportMetric(floorEveryParty.Seconds(), "setup-floor-every-party-s")
	b.ReportMetric(session.Seconds(), "query-s")
	b.ReportMetric(query.Seconds(), "mpcctl-query-s")
	b.ReportMetric(ledgerWait.Seconds(), "ledger-s")
	b.ReportMetric(floorQuery.Seconds(), "query-floor-s")
	fmt.Fprintf(os.Stdout, "\nN=%d t=%d parameters=%s (mpcnode processes on loopback vs. raw lattigo in one process)\n", n, t, params.Name)
	fmt.Fprintf(os.Stdout, "  setup   %8.3fs   floor %8.3fs   ratio %5.2fx   (session, as mpcctl sees it)\n", setup.Seconds(), floorSetup.Seconds(), setup.Seconds()/floorSetup.Seconds())
	fmt.Fprintf(os.Stdout, "  setup   %8.3fs   floor %8.3fs   ratio %5.2fx   (floor with every party deriving the keys itself, as the protocol does)\n", setup.Seconds(), floorEveryParty.Seconds(), setup.Seconds()/floorEveryParty.Seconds())
	fmt.Fprintf(os.Stdout, "  setup   %8.3fs   (whole mpcctl command: process start, key unsealing, setup)\n", setupCommand.Seconds())
	fmt.Fprintf(os.Stdout, "  query   %8.3fs   floor %8.3fs   ratio %5.2fx   (session on the coordinator incl. ledger, median of 5)\n", session.Seconds(), floorQuery.Seconds(), session.Seconds()/floorQuery.Seconds())
	noLedger := session - ledgerWait
	fmt.Fprintf(os.Stdout, "  ledger  %8.3fs   per query (approval + transcript commits, 2 txs: %.0f ms per commit)\n", ledgerWait.Seconds(), ledgerWait.Seconds()*500)
	fmt.Fprintf(os.Stdout, "  query without the ledger %6.3fs, with %6.3fs: the ledger adds %.0f%%\n", noLedger.Seconds(), session.Seconds(), 100*ledgerWait.Seconds()/noLedger.Seconds())
	fmt.Fprintf(os.Stdout, "  mpcctl  %8.3fs   floor %8.3fs   ratio %5.2fx   (whole command: process start, key unsealing, submit, decrypt)\n", query.Seconds(), floorQuery.Seconds(), query.Seconds()/floorQuery.Seconds())
	var setupTotal, queryTotal uint64
	for i, p := range before {
		fmt.Fprintf(os.Stdout, "  %-8s sent %8.1f MB during setup, %7.2f MB per query\n", p.ID, float64(setupBytes[i])/1e6, float64(queryBytes[i])/1e6)
		setupTotal += setupBytes[i]
		queryTotal += queryBytes[i]
	}
	floorSetupBytes := protocols.FloorSetupBytes(params, n, params.GaloisElements())
	floorQueryBytes := protocols.FloorQueryBytes(params, n, t)
	fmt.Fprintf(os.Stdout, "  bytes   %8.1f MB setup, floor %8.1f MB, ratio %5.2fx   (all parties; the floor is every share to every other party at lattigo's sizes)\n",
		float64(setupTotal)/1e6, float64(floorSetupBytes)/1e6, float64(setupTotal)/float64(floorSetupBytes))
	fmt.Fprintf(os.Stdout, "  bytes   %8.2f MB query, floor %8.2f MB, ratio %5.2fx   (n input ciphertexts, t key-switch shares, the result)\n",
		float64(queryTotal)/1e6, float64(floorQueryBytes)/1e6, float64(queryTotal)/float64(floorQueryBytes))
	b.ReportMetric(float64(setupTotal)/float64(floorSetupBytes), "setup-bytes/floor")
	b.ReportMetric(float64(queryTotal)/float64(floorQueryBytes), "query-bytes/floor")
}

// floorQuery is the raw cost of a query's cryptography in one process:
// each of n parties encrypts its partial sums (values), they are added, t
// parties key-switch the sum to the analyst and the analyst decrypts.
func floorQuery(params engine.Parameters, values []float64, n, t int) (time.Duration, error) {
	kg := rlwe.NewKeyGenerator(params)
	sk, pk := kg.GenKeyPairNew()
	start := time.Now()
	var cts []*rlwe.Ciphertext
	for range n {
		ct, err := engine.EncryptVector(params, pk, values)
		if err != nil {
			return 0, err
		}
		cts = append(cts, ct)
	}
	sum, err := engine.Sum(params, cts)
	if err != nil {
		return 0, err
	}
	encrypt := time.Since(start)
	ks, err := protocols.FloorKeySwitch(params, t)
	if err != nil {
		return 0, err
	}
	start = time.Now()
	if _, err := engine.DecryptVector(params, sk, sum, len(values)); err != nil {
		return 0, err
	}
	return encrypt + ks + time.Since(start), nil
}
