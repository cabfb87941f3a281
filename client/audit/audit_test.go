package audit

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

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/consortium"
)

// A failed check skips only the checks that depend on it, naming why; the
// others still run.
func TestRunSkipsOnlyDependents(t *testing.T) {
	var l checklist
	ran := map[string]bool{}
	step := func(name string, needs []string, err error) {
		l.run(name, needs, func() (string, error) { ran[name] = true; return name + " fine", err })
	}
	step("a", nil, errors.New("a is broken"))
	step("b", []string{"a"}, nil)
	step("c", nil, nil)
	step("d", []string{"c"}, nil)
	step("e", []string{"c", "b"}, nil)
	step("f", []string{"later"}, nil)
	want := map[string]Status{"a": Fail, "b": Skip, "c": OK, "d": OK, "e": Skip, "f": Skip}
	for name, st := range want {
		if got, ran := l.status(name); !ran || got != st {
			t.Errorf("%s: %v (ran %t), want %v", name, got, ran, st)
		}
	}
	if _, ran := l.status("later"); ran {
		t.Error("a check that never ran has a status")
	}
	if ran["b"] || ran["e"] || ran["f"] || !ran["a"] || !ran["c"] || !ran["d"] {
		t.Errorf("ran %v", ran)
	}
	details := map[string]string{"a": "a is broken", "b": "skipped: needs a (FAIL)", "d": "d fine",
		"e": "skipped: needs b (skipped)", "f": "skipped: needs later (not run)"}
	for _, c := range l.checks {
		if d, ok := details[c.Name]; ok && c.Detail != d {
			t.Errorf("%s: detail %q, want %q", c.Name, c.Detail, d)
		}
		if c.Name == "e" && (len(c.Needs) != 2 || c.Needs[0] != "c" || c.Needs[1] != "b") {
			t.Errorf("e: needs %v", c.Needs)
		}
	}
}

func TestStatusString(t *testing.T) {
	for st, want := range map[Status]string{OK: "ok", Fail: "FAIL", Skip: "skipped", Status(9): "Status(9)"} {
		if got := st.String(); got != want {
			t.Errorf("%d: %q, want %q", int(st), got, want)
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
	a := &Auditor{cons: &consortium.Consortium{Chain: &consortium.Chain{Genesis: string(gen)}},
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

type heldFunc func(session string) (*synodv1.ResultMetadata, []byte, error)

func (f heldFunc) Load(session string) (*synodv1.ResultMetadata, []byte, error) { return f(session) }

// Without a result held here, or with one without a receipt, the local
// check fails and every other check is reported, skipped, in order,
// without touching the chain.
func TestVerifyWithoutLocalResult(t *testing.T) {
	a := &Auditor{cons: &consortium.Consortium{Chain: &consortium.Chain{}}, rpcs: []string{"127.0.0.1:1", "127.0.0.1:2"}}
	order := []string{CheckLocal, CheckTranscript, CheckHeight, CheckProof, CheckRecord, CheckSetup, CheckApproval,
		CheckApprovalRef, CheckCertificate, CheckResult}
	for name, tc := range map[string]struct {
		held heldFunc
		why  string
	}{
		"no result": {func(s string) (*synodv1.ResultMetadata, []byte, error) {
			return nil, nil, errors.New("no result of session " + s + " here")
		}, "no result of session s-1 here"},
		"no receipt": {func(s string) (*synodv1.ResultMetadata, []byte, error) {
			return &synodv1.ResultMetadata{Session: s}, []byte{1}, nil
		}, "the result has no receipt"},
	} {
		checks := a.Verify(context.Background(), "s-1", tc.held)
		if len(checks) != len(order) {
			t.Fatalf("%s: %d checks, want %d", name, len(checks), len(order))
		}
		for i, c := range checks {
			if c.Name != order[i] {
				t.Errorf("%s: check %d is %q, want %q", name, i, c.Name, order[i])
			}
			if i == 0 {
				if c.Status != Fail || c.Detail != tc.why {
					t.Errorf("%s: local check %+v", name, c)
				}
				continue
			}
			if c.Status != Skip || !strings.Contains(c.Detail, "(FAIL)") && !strings.Contains(c.Detail, "(skipped)") {
				t.Errorf("%s: %+v", name, c)
			}
		}
	}
}
