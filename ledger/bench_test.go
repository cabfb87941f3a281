package ledger

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkCommit measures the latency of one Commit (broadcast, then wait
// for inclusion) on a 4-validator loopback chain with fast blocks
// (FastBlocks), committing through the first validator's local client.
//
// idle: each tx is sent to a chain at rest (the block after the previous
// tx's block, which carries its app hash, is made first, outside the timed
// part), as a query's approval and transcript commits are.
// back-to-back: each tx is sent as soon as the previous one is committed,
// so it usually waits for that app-hash block as well.
func BenchmarkCommit(b *testing.B) {
	for _, idle := range []bool{true, false} {
		name := "validators=4/back-to-back"
		if idle {
			name = "validators=4/idle"
		}
		b.Run(name, func(b *testing.B) {
			tn := startNet(b, 4)
			ctx := testContext(b, 10*time.Minute)
			c := tn.nodes[0].Client()
			m := tn.members[0]
			var timed time.Duration
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				tx := signedTx(b, m, KindReceipt, fmt.Sprintf("bench-%t-%d-%d", idle, b.N, i))
				start := time.Now()
				r, err := c.Commit(ctx, tx)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				timed += lat[len(lat)-1]
				if idle {
					b.StopTimer()
					waitHeight(b, tn, r.Height+1)
					time.Sleep(20 * time.Millisecond)
					b.StartTimer()
				}
			}
			per := timed / time.Duration(b.N)
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/commit")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "ms-p90")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// waitHeight waits until every validator's App has committed block h.
func waitHeight(b *testing.B, tn *testNet, h int64) {
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range tn.apps {
		for a.Height() < h {
			if time.Now().After(deadline) {
				b.Fatalf("block %d not committed within 30 s", h)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
