package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/consortium"
)

// A failed check skips only the checks that depend on it, naming why; the
// others still run.
func TestAuditRunSkipsOnlyDependents(t *testing.T) {
	a := &auditor{}
	ran := map[string]bool{}
	step := func(name string, needs []string, err error) {
		a.run(name, needs, func() (string, error) { ran[name] = true; return name + " fine", err })
	}
	step("a", nil, errors.New("a is broken"))
	step("b", []string{"a"}, nil)
	step("c", nil, nil)
	step("d", []string{"c"}, nil)
	step("e", []string{"c", "b"}, nil)
	want := map[string]string{"a": statusFail, "b": statusSkipped, "c": statusOK, "d": statusOK, "e": statusSkipped}
	for name, st := range want {
		if got := a.status(name); got != st {
			t.Errorf("%s: %s, want %s", name, got, st)
		}
	}
	if ran["b"] || ran["e"] || !ran["a"] || !ran["c"] || !ran["d"] {
		t.Errorf("ran %v", ran)
	}
	for _, c := range a.checks {
		switch c.Name {
		case "a":
			if c.OK || c.Detail != "a is broken" {
				t.Errorf("a: %+v", c)
			}
		case "b":
			if c.OK || c.Detail != "skipped: needs a (FAIL)" {
				t.Errorf("b: %+v", c)
			}
		case "e":
			if c.OK || c.Detail != "skipped: needs b (skipped)" {
				t.Errorf("e: %+v", c)
			}
		case "d":
			if !c.OK || c.Detail != "d fine" {
				t.Errorf("d: %+v", c)
			}
		}
	}
}

// A primary that answers with errors (not only one that refuses
// connections) makes include move on to the next RPC address, and the
// error names every attempt.
func TestIncludeTriesEveryRPC(t *testing.T) {
	v, err := ledger.GenerateValidator()
	if err != nil {
		t.Fatal(err)
	}
	gen, err := ledger.Genesis("synod-audit-test", map[string]ledger.ValidatorFiles{"p0": v})
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}))
	defer broken.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	a := &auditor{cons: &consortium.Consortium{Chain: &consortium.Chain{Genesis: string(gen)}},
		rpcs: []string{broken.URL, closed}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err = a.include(ctx, make([]byte, 32), ledger.KindTranscript, "s")
	if err == nil {
		t.Fatal("include succeeded without a chain")
	}
	msg := err.Error()
	if !strings.Contains(msg, "(2 tried)") || !strings.Contains(msg, "primary "+broken.URL) || !strings.Contains(msg, "primary "+closed) {
		t.Fatalf("error does not name both attempts: %v", err)
	}
	if hits.Load() == 0 {
		t.Fatal("the broken primary was never asked")
	}
}
