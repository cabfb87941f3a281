package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger/records"
	"github.com/synod-mpc/synod/parties/consortium"
)

// Without the result, VerifyChain reports every check of Verify: the
// receipt's and the result's skipped naming the missing result, the
// others run against the chain (here unreachable, so they fail or skip
// naming what failed).
func TestVerifyChainSkipsWhatNeedsTheResult(t *testing.T) {
	a := &Auditor{cons: &consortium.Consortium{Chain: &consortium.Chain{}}, rpcs: []string{"127.0.0.1:1", "127.0.0.1:2"}}
	checks := a.VerifyChain(context.Background(), "s-1")
	want := []struct {
		name   string
		status Status
		detail string
	}{
		{CheckLocal, Skip, NeedsResult},
		{CheckTranscript, Fail, "read session records"},
		{CheckHeight, Skip, "needs local result (skipped)"},
		{CheckProof, Skip, "needs local result (skipped)"},
		{CheckRecord, Skip, "needs transcript inclusion (FAIL)"},
		{CheckApproval, Fail, "read session records"},
		{CheckSetup, Skip, "needs approval inclusion (FAIL)"},
		{CheckApprovalRef, Skip, "needs transcript record (skipped), approval inclusion (FAIL)"},
		{CheckCertificate, Skip, "needs approval inclusion (FAIL), setup records (skipped)"},
		{CheckResult, Skip, "needs local result (skipped)"},
	}
	if len(checks) != len(want) {
		t.Fatalf("%d checks, want %d: %+v", len(checks), len(want), checks)
	}
	for i, w := range want {
		c := checks[i]
		if c.Name != w.name || c.Status != w.status || !strings.Contains(c.Detail, w.detail) {
			t.Errorf("check %d: %s %v %q, want %s %v containing %q", i, c.Name, c.Status, c.Detail, w.name, w.status, w.detail)
		}
	}
}

func body(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func approvalBody(t *testing.T, spec *synodv1.QuerySpec) []byte {
	t.Helper()
	raw, err := proto.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return body(t, records.Approval{Analyst: "analyst", Spec: hex.EncodeToString(raw), SpecDigest: "00", Certificate: "00",
		Signers: []string{"party-1", "party-2"}, SetupID: "setup", Epsilon: 0.5})
}

// A session's kind and facts come from its records' bodies.
func TestSessionFill(t *testing.T) {
	transcript := records.Transcript{Analyst: "analyst", Contributors: []string{"party-1", "party-3"}}
	model := func(outcome string) records.Model {
		tr := transcript
		tr.Outcome = outcome
		return records.Model{Transcript: tr, Model: "m", ModelDigest: "00"}
	}
	for _, tc := range []struct {
		name     string
		kinds    []string
		bodies   [][]byte
		kind     string
		contribs []string
		epsilon  float64
	}{
		{"query", []string{records.KindApproval, records.KindTranscript},
			[][]byte{approvalBody(t, &synodv1.QuerySpec{Dataset: "patients"}), body(t, transcript)}, "query", transcript.Contributors, 0.5},
		{"exact training", []string{records.KindApproval},
			[][]byte{approvalBody(t, &synodv1.QuerySpec{Training: &synodv1.Training{Mode: synodv1.Training_EXACT}})}, "training (exact)", nil, 0.5},
		{"encrypted training", []string{records.KindApproval},
			[][]byte{approvalBody(t, &synodv1.QuerySpec{Training: &synodv1.Training{Mode: synodv1.Training_ENCRYPTED}})}, "training (encrypted)", nil, 0.5},
		{"validation", []string{records.KindApproval},
			[][]byte{approvalBody(t, &synodv1.QuerySpec{Inference: &synodv1.Inference{}})}, "validation", nil, 0.5},
		{"model upload", []string{records.KindTranscript}, [][]byte{body(t, model("stored"))}, "model upload", transcript.Contributors, 0},
		{"prediction", []string{records.KindTranscript}, [][]byte{body(t, model("released"))}, "prediction", transcript.Contributors, 0},
		{"setup", []string{records.KindSetup}, [][]byte{[]byte(`{}`)}, "setup", nil, 0},
		{"malformed approval", []string{records.KindApproval}, [][]byte{[]byte(`{"analyst": 1}`)}, "unknown", nil, 0},
	} {
		s := Session{Kind: "unknown"}
		for i, k := range tc.kinds {
			s.fill(k, tc.bodies[i])
		}
		if s.Kind != tc.kind || !slices.Equal(s.Contributors, tc.contribs) || s.Epsilon != tc.epsilon {
			t.Errorf("%s: kind %q contributors %v epsilon %g, want %q %v %g", tc.name, s.Kind, s.Contributors, s.Epsilon, tc.kind, tc.contribs, tc.epsilon)
		}
		if tc.epsilon != 0 && (s.Analyst != "analyst" || !slices.Equal(s.Signers, []string{"party-1", "party-2"}) || s.Query == "") {
			t.Errorf("%s: analyst %q signers %v query %q", tc.name, s.Analyst, s.Signers, s.Query)
		}
	}
	var s Session
	s.fill(records.KindOutcome, body(t, records.Outcome{Analyst: "analyst", Outcome: records.OutcomeAborted, Reason: "party-2 sent garbage", Offender: "party-2"}))
	if s.Reason != "party-2 sent garbage" || s.Offender != "party-2" || s.Analyst != "analyst" {
		t.Errorf("outcome: %+v", s)
	}
}
