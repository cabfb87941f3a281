package test

import (
	"strings"
	"testing"
)

// TestMalformedSetupShareAbortsNamingTheSender: a party that sends a
// relinearization-key share of the wrong size makes setup fail, and the
// error names it; nothing is stored.
func TestMalformedSetupShareAbortsNamingTheSender(t *testing.T) {
	c := newCluster(t, 3, 2, "ckks-n13")
	c.stop(2)
	c.start(2, "mpcnode-faulty", "SYNOD_FAULT=truncate:setup.rkg.r1")
	c.waitReachable(3)
	out, err := c.ctl("setup")
	if err == nil {
		t.Fatal("setup succeeded with a party sending truncated shares")
	}
	if !strings.Contains(out, "party-2") {
		t.Fatalf("error does not name party-2: %s", out)
	}
	t.Logf("setup refused: %s", strings.TrimSpace(out))
	ps, err := c.parties()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.SetupDone {
			t.Fatalf("%s stored keys from an aborted setup", p.ID)
		}
	}
}

// TestMalformedKeySwitchShareAbortsNamingTheSender: a key-switch share of
// the wrong size aborts the query naming its sender; nothing is released.
func TestMalformedKeySwitchShareAbortsNamingTheSender(t *testing.T) {
	c := newCluster(t, 3, 2, "ckks-n13")
	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	c.stop(1)
	c.start(1, "mpcnode-faulty", "SYNOD_FAULT=truncate:keyswitch.share")
	c.waitReachable(3)
	_, err := c.query(demoQuery...)
	if err == nil || !strings.Contains(err.Error(), "party-1") || !strings.Contains(err.Error(), "key switch share") {
		t.Fatalf("want an abort naming party-1's key switch share, got %v", err)
	}
	t.Logf("query refused: %v", err)
}

// TestMalformedCohortInputAbortsNamingTheSender: under a minimum cohort
// (party-2's policy), a party whose cohort-test input is cut short aborts
// the query naming it; nothing is released.
func TestMalformedCohortInputAbortsNamingTheSender(t *testing.T) {
	c := newCluster(t, 3, 2, "ckks-n13")
	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	c.stop(2)
	c.start(2, "mpcnode-faulty", "SYNOD_FAULT=truncate:session.input", "SYNOD_POLICY_MIN_COHORT=5")
	c.waitReachable(3)
	q, err := c.query(demoQuery...)
	if err == nil {
		t.Fatalf("released %+v with a truncated cohort input", q)
	}
	if !strings.Contains(err.Error(), "party-2") || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("want an abort naming party-2's malformed input, got %v", err)
	}
	t.Logf("query refused: %v", err)
}
