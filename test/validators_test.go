package test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestValidatorOnlyMembers: 4 parties with threshold 2 are 4 validators,
// which tolerate one fault, so N-t = 2 parties down would stop the chain.
// Three validator-only members make 7 validators, which tolerate two: with
// 2 parties down a query still completes, matches plaintext and passes
// the audit. With too few validators up the query fails saying the ledger
// did not commit; below the threshold it is refused. Neither releases
// anything.
func TestValidatorOnlyMembers(t *testing.T) {
	began := time.Now()
	c, vs := newClusterWithValidators(t, 4, 2, 3, "ckks-n13")
	t.Logf("consortium of 4 parties and 3 validators up in %s", time.Since(began).Round(time.Millisecond))

	ps, err := c.parties()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, []string{"party-1", "party-2", "party-3", "party-4"}) {
		t.Fatalf("mpcctl parties lists %v, want the 4 parties only", ids)
	}
	start := time.Now()
	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	t.Logf("setup took %s", time.Since(start).Round(time.Millisecond))
	for i := 1; i <= 3; i++ {
		if _, err := os.Stat(filepath.Join(c.dir, "validator-"+string(rune('0'+i)), "data", "setup-secret.sealed")); err == nil {
			t.Fatalf("validator-%d holds a key share", i)
		}
	}

	results := func() int {
		es, _ := os.ReadDir(filepath.Join(c.dir, "analyst", "data", "results"))
		return len(es)
	}

	t.Run("N-t parties down: the query completes and verifies", func(t *testing.T) {
		c.stop(4)
		c.stop(3)
		start := time.Now()
		q, err := c.query(demoQuery...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("query with 2 of 4 parties and 5 of 7 validators took %s", time.Since(start).Round(time.Millisecond))
		if !slices.Equal(q.Contributors, []string{"party-1", "party-2"}) {
			t.Fatalf("contributors %v, want party-1 and party-2", q.Contributors)
		}
		checkAgainstPlaintext(t, q, demoSpec())
		if q.Receipt == nil || q.Receipt.Height == 0 {
			t.Fatalf("result without a receipt: %+v", q)
		}
		out, err := c.auditVerify(q.Session)
		if err != nil {
			t.Fatalf("audit verify with 2 parties down: %v\n%s", err, out)
		}
		for _, want := range []string{"transcript inclusion", "setup records", "approval certificate", "result hash"} {
			if !strings.Contains(out, "ok    "+want) {
				t.Fatalf("check %q not reported as ok:\n%s", want, out)
			}
		}
	})

	t.Run("chain below 2/3: the query fails naming the ledger", func(t *testing.T) {
		vs.stop(1)
		vs.stop(2) // 2 parties + 1 validator: 3 of 7 validators
		before := results()
		start := time.Now()
		_, err := c.query(demoQuery...)
		if err == nil || !strings.Contains(err.Error(), "did not commit the approval") ||
			!strings.Contains(err.Error(), "more than 2/3 of the validator set") || !strings.Contains(err.Error(), "nothing was released") {
			t.Fatalf("want an error saying the ledger did not commit, got %v", err)
		}
		t.Logf("refused after %s: %v", time.Since(start).Round(time.Millisecond), err)
		if n := results(); n != before {
			t.Fatalf("%d results held by the analyst, %d before: something was released", n, before)
		}
	})

	t.Run("below the threshold nothing is released", func(t *testing.T) {
		c.stop(2)
		before := results()
		_, err := c.query(demoQuery...)
		if err == nil || !strings.Contains(err.Error(), "threshold is 2") || !strings.Contains(err.Error(), "nothing was released") {
			t.Fatalf("want a threshold error, got %v", err)
		}
		if n := results(); n != before {
			t.Fatalf("%d results held by the analyst, %d before: something was released", n, before)
		}
	})
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
}
