package ledger

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkCommit measures the latency of one Commit (broadcast, then wait
// for inclusion) on a 4-validator loopback chain with fast timeouts.
func BenchmarkCommit(b *testing.B) {
	tn := startNet(b, 4)
	ctx := testContext(b, 10*time.Minute)
	c := tn.nodes[0].Client()
	m := tn.members[0]
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.Commit(ctx, signedTx(b, m, KindReceipt, fmt.Sprintf("bench-%d-%d", b.N, i))); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/commit")
	b.Logf("commit latency: %v per tx over %d txs (4 validators, loopback)", per, b.N)
}
