package records

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The node's own definitions of the bodies before this package existed
// (parties/node/records.go and model.go), kept verbatim: records on
// existing chains were written with them, so the types here must encode
// exactly as they did and decode what they wrote.
type (
	nodeSetupRecord struct {
		Parameters string   `json:"parameters"`
		Parties    []string `json:"parties"`
		Threshold  int      `json:"threshold"`
		KeyDigest  string   `json:"key_digest"`
		GroupKey   string   `json:"group_key"`
		CRSSeed    string   `json:"crs_seed"`
	}
	nodeApprovalRecord struct {
		Analyst     string   `json:"analyst"`
		Spec        string   `json:"spec"`
		SpecDigest  string   `json:"spec_digest"`
		Certificate string   `json:"certificate"`
		Signers     []string `json:"signers"`
		SetupID     string   `json:"setup_session"`
		Epsilon     float64  `json:"epsilon,omitempty"`
		MinCohort   int      `json:"min_cohort,omitempty"`
	}
	nodeTranscriptRecord struct {
		Analyst      string    `json:"analyst"`
		Parameters   string    `json:"parameters"`
		SpecDigest   string    `json:"spec_digest"`
		ApprovalTx   string    `json:"approval_tx"`
		SetupID      string    `json:"setup_session"`
		Participants []string  `json:"participants"`
		Contributors []string  `json:"contributors"`
		KeySwitchers []string  `json:"key_switchers"`
		Messages     []string  `json:"messages"`
		ResultDigest string    `json:"result_hash"`
		MinCohort    int       `json:"min_cohort,omitempty"`
		Suppressed   []string  `json:"suppressed,omitempty"`
		Started      time.Time `json:"started"`
		Finished     time.Time `json:"finished"`
	}
	nodeReceiptRecord struct {
		Analyst      string    `json:"analyst"`
		ResultDigest string    `json:"result_hash"`
		TranscriptTx string    `json:"transcript_tx"`
		Released     time.Time `json:"released"`
	}
	nodeModelRecord struct {
		nodeTranscriptRecord
		Model       string   `json:"model"`
		ModelDigest string   `json:"model_digest"`
		Parties     []string `json:"allowed_parties,omitempty"`
	}
)

var (
	t0 = time.Date(2026, 11, 27, 9, 30, 0, 123456789, time.UTC)
	t1 = t0.Add(1500 * time.Millisecond)
)

func sampleTranscript() Transcript {
	return Transcript{Analyst: "analyst", Parameters: "ckks-n14", SpecDigest: "5d41", ApprovalTx: "AB12", SetupID: "setup-1",
		Participants: []string{"party-1", "party-2", "party-3"}, Contributors: []string{"party-1", "party-3"},
		KeySwitchers: []string{"party-1", "party-2"}, Messages: []string{"00ff", "ee11"}, ResultDigest: "c0ffee",
		MinCohort: 5, Suppressed: []string{"sex=1"}, Started: t0, Finished: t1}
}

// Every body encodes byte for byte as the node's definitions did, and
// decodes back to the same value.
func TestEncodingUnchanged(t *testing.T) {
	tr := sampleTranscript()
	cases := []struct {
		name    string
		body    any
		legacy  any
		decoded func([]byte) (any, error)
	}{
		{"setup",
			&Setup{Parameters: "ckks-n14", Parties: []string{"party-1", "party-2"}, Threshold: 2, KeyDigest: "aa", GroupKey: "bb", CRSSeed: "cc"},
			&nodeSetupRecord{Parameters: "ckks-n14", Parties: []string{"party-1", "party-2"}, Threshold: 2, KeyDigest: "aa", GroupKey: "bb", CRSSeed: "cc"},
			func(b []byte) (any, error) { return DecodeSetup(b) }},
		{"approval",
			&Approval{Analyst: "analyst", Spec: "0a08", SpecDigest: "dd", Certificate: "ee", Signers: []string{"party-2", "party-1"}, SetupID: "setup-1", Epsilon: 0.5, MinCohort: 5},
			&nodeApprovalRecord{Analyst: "analyst", Spec: "0a08", SpecDigest: "dd", Certificate: "ee", Signers: []string{"party-2", "party-1"}, SetupID: "setup-1", Epsilon: 0.5, MinCohort: 5},
			func(b []byte) (any, error) { return DecodeApproval(b) }},
		{"approval without privacy",
			&Approval{Analyst: "analyst", Spec: "0a08", SpecDigest: "dd", Certificate: "ee", Signers: []string{"party-1"}, SetupID: "setup-1"},
			&nodeApprovalRecord{Analyst: "analyst", Spec: "0a08", SpecDigest: "dd", Certificate: "ee", Signers: []string{"party-1"}, SetupID: "setup-1"},
			func(b []byte) (any, error) { return DecodeApproval(b) }},
		{"transcript",
			&tr,
			&nodeTranscriptRecord{Analyst: tr.Analyst, Parameters: tr.Parameters, SpecDigest: tr.SpecDigest, ApprovalTx: tr.ApprovalTx, SetupID: tr.SetupID,
				Participants: tr.Participants, Contributors: tr.Contributors, KeySwitchers: tr.KeySwitchers, Messages: tr.Messages,
				ResultDigest: tr.ResultDigest, MinCohort: tr.MinCohort, Suppressed: tr.Suppressed, Started: tr.Started, Finished: tr.Finished},
			func(b []byte) (any, error) { return DecodeTranscript(b) }},
		{"model upload",
			&Model{Transcript: Transcript{Analyst: "analyst", Parameters: "ckks-n14", SpecDigest: "11", SetupID: "setup-1",
				Participants: []string{"party-1"}, Contributors: []string{"party-1"}, Messages: []string{"22"}, ResultDigest: "33", Started: t0, Finished: t1},
				Model: "diabetes", ModelDigest: "33", Parties: []string{"party-2"}},
			&nodeModelRecord{nodeTranscriptRecord: nodeTranscriptRecord{Analyst: "analyst", Parameters: "ckks-n14", SpecDigest: "11", SetupID: "setup-1",
				Participants: []string{"party-1"}, Contributors: []string{"party-1"}, Messages: []string{"22"}, ResultDigest: "33", Started: t0, Finished: t1},
				Model: "diabetes", ModelDigest: "33", Parties: []string{"party-2"}},
			func(b []byte) (any, error) { return DecodeModel(b) }},
		{"receipt",
			&Receipt{Analyst: "analyst", ResultDigest: "c0ffee", TranscriptTx: "AB", Released: t1},
			&nodeReceiptRecord{Analyst: "analyst", ResultDigest: "c0ffee", TranscriptTx: "AB", Released: t1},
			func(b []byte) (any, error) { return DecodeReceipt(b) }},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.body)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(c.legacy)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encodes as\n%s\nthe node wrote\n%s", c.name, got, want)
		}
		back, err := c.decoded(want)
		if err != nil {
			t.Errorf("%s: a body the node wrote does not decode: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(back, c.body) {
			t.Errorf("%s: decodes to %+v, want %+v", c.name, back, c.body)
		}
	}
}

// The required fields are the ones every writer has always written; this
// list is part of the format (a field added later must be omitempty).
func TestRequiredFields(t *testing.T) {
	want := map[string][]string{
		"setup":      {"parameters", "parties", "threshold", "key_digest", "group_key", "crs_seed"},
		"approval":   {"analyst", "spec", "spec_digest", "certificate", "signers", "setup_session"},
		"transcript": {"analyst", "parameters", "spec_digest", "approval_tx", "setup_session", "participants", "contributors", "key_switchers", "messages", "result_hash", "started", "finished"},
		"receipt":    {"analyst", "result_hash", "transcript_tx", "released"},
	}
	want["model"] = append(slices.Clone(want["transcript"]), "model", "model_digest")
	got := map[string][]field{"setup": setupFields, "approval": approvalFields, "transcript": transcriptFields, "receipt": receiptFields, "model": modelFields}
	for kind, fields := range got {
		var names []string
		for _, f := range fields {
			names = append(names, f.name)
		}
		if !slices.Equal(names, want[kind]) {
			t.Errorf("%s: required %v, want %v", kind, names, want[kind])
		}
	}
}

// validBodies are one encoded body of each type, with its decoder.
func validBodies(t testing.TB) map[string]struct {
	body   []byte
	decode func([]byte) (any, error)
} {
	enc := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tr := sampleTranscript()
	return map[string]struct {
		body   []byte
		decode func([]byte) (any, error)
	}{
		"setup": {enc(Setup{Parameters: "ckks-n14", Parties: []string{"party-1"}, Threshold: 1, KeyDigest: "aa", GroupKey: "bb", CRSSeed: "cc"}),
			func(b []byte) (any, error) { return DecodeSetup(b) }},
		"approval": {enc(Approval{Analyst: "analyst", Spec: "0a", SpecDigest: "dd", Certificate: "ee", Signers: []string{"party-1"}, SetupID: "s"}),
			func(b []byte) (any, error) { return DecodeApproval(b) }},
		"transcript": {enc(tr), func(b []byte) (any, error) { return DecodeTranscript(b) }},
		"model": {enc(Model{Transcript: tr, Model: "m", ModelDigest: "ff"}),
			func(b []byte) (any, error) { return DecodeModel(b) }},
		"receipt": {enc(Receipt{Analyst: "analyst", ResultDigest: "c0", TranscriptTx: "AB", Released: t0}),
			func(b []byte) (any, error) { return DecodeReceipt(b) }},
		"outcome": {enc(Outcome{Analyst: "analyst", Outcome: OutcomeAborted, Reason: "party-3 unreachable", Offender: "party-3", Finished: t0}),
			func(b []byte) (any, error) { return DecodeOutcome(b) }},
	}
}

// A body without one of its required fields, or with it null, is refused
// naming the field; a null slice is what a writer produces for an empty
// one and is accepted.
func TestMissingFieldRefused(t *testing.T) {
	required := map[string][]field{"setup": setupFields, "approval": approvalFields, "transcript": transcriptFields, "receipt": receiptFields, "model": modelFields}
	for kind, v := range validBodies(t) {
		for _, f := range required[kind] {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(v.body, &m); err != nil {
				t.Fatal(err)
			}
			delete(m, f.name)
			b, _ := json.Marshal(m)
			if _, err := v.decode(b); err == nil || !strings.Contains(err.Error(), `missing field "`+f.name+`"`) {
				t.Errorf("%s without %s: %v", kind, f.name, err)
			}
			m[f.name] = json.RawMessage("null")
			b, _ = json.Marshal(m)
			_, err := v.decode(b)
			if f.nullable && err != nil {
				t.Errorf("%s with %s null: %v", kind, f.name, err)
			}
			if !f.nullable && (err == nil || !strings.Contains(err.Error(), `field "`+f.name+`" is null`)) {
				t.Errorf("%s with %s null: %v", kind, f.name, err)
			}
		}
	}
}

// Fields a later writer may add are ignored; malformed JSON, other JSON
// values than an object, and fields of the wrong type are refused, the
// last naming the field.
func TestDecodeTolerantButStrict(t *testing.T) {
	for kind, v := range validBodies(t) {
		want, err := v.decode(v.body)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		extended := append(bytes.TrimSuffix(bytes.Clone(v.body), []byte("}")), []byte(`,"added_later":{"x":[1,2]}}`)...)
		got, err := v.decode(extended)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s with an unknown field: %+v, %v", kind, got, err)
		}
		for name, b := range map[string][]byte{
			"truncated":      v.body[:len(v.body)-1],
			"trailing bytes": append(bytes.Clone(v.body), '{'),
			"empty":          nil,
			"null":           []byte("null"),
			"array":          []byte(`[1]`),
			"string":         []byte(`"setup"`),
		} {
			if _, err := v.decode(b); err == nil || !strings.HasPrefix(err.Error(), "records: ") {
				t.Errorf("%s, %s: %v", kind, name, err)
			}
		}
	}
	_, err := DecodeSetup([]byte(`{"parameters":1,"parties":[],"threshold":2,"key_digest":"","group_key":"","crs_seed":""}`))
	if err == nil || !strings.Contains(err.Error(), "parameters") {
		t.Errorf("setup with a numeric parameters field: %v", err)
	}
	_, err = DecodeTranscript([]byte(strings.Replace(string(validBodies(t)["transcript"].body), `"started":"2026`, `"started":"x2026`, 1)))
	if err == nil {
		t.Error("transcript with a malformed start time decoded")
	}
}

// A model upload's transcript, as the node writes it (no approval, no key
// switchers: key_switchers is null), reads both as a Model and, by an
// auditor that only needs the transcript, as a Transcript.
func TestModelUploadReadsAsTranscript(t *testing.T) {
	b, err := json.Marshal(nodeModelRecord{nodeTranscriptRecord: nodeTranscriptRecord{Analyst: "analyst", Parameters: "ckks-n14", SpecDigest: "11",
		SetupID: "setup-1", Participants: []string{"party-1", "party-2"}, Contributors: []string{"party-1", "party-2"}, Messages: []string{"aa"},
		ResultDigest: "33", Started: t0, Finished: t1}, Model: "diabetes", ModelDigest: "33"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"key_switchers":null`)) || !bytes.Contains(b, []byte(`"approval_tx":""`)) {
		t.Fatalf("the sample does not exercise a null slice and an empty string: %s", b)
	}
	m, err := DecodeModel(b)
	if err != nil || m.Model != "diabetes" || m.ModelDigest != "33" || m.ResultDigest != "33" || m.KeySwitchers != nil {
		t.Fatalf("as a model: %+v, %v", m, err)
	}
	tr, err := DecodeTranscript(b)
	if err != nil || !reflect.DeepEqual(*tr, m.Transcript) {
		t.Fatalf("as a transcript: %+v, %v", tr, err)
	}
	if _, err := DecodeModel(mustMarshal(t, m.Transcript)); err == nil || !strings.Contains(err.Error(), `missing field "model"`) {
		t.Fatalf("a plain transcript read as a model: %v", err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKinds(t *testing.T) {
	for _, k := range []string{"setup", "approval", "round", "transcript", "receipt", "outcome"} {
		if !KnownKind(k) {
			t.Errorf("%s is not a known kind", k)
		}
	}
	for _, k := range []string{"", "Setup", "model", "transcript "} {
		if KnownKind(k) {
			t.Errorf("%q is a known kind", k)
		}
	}
	if got := KindList(); got != "setup, approval, round, transcript, receipt or outcome" {
		t.Errorf("KindList() = %q", got)
	}
}

// The fuzz targets feed arbitrary bytes to each decoder. Property: no
// panic, and whatever decodes re-encodes to a body that decodes and
// re-encodes to the same bytes (the value itself need not survive: an
// empty optional list decodes as empty and comes back as absent, nil).

func fuzzDecoder[T any](f *testing.F, kind string, decode func([]byte) (*T, error)) {
	valid := validBodies(f)[kind].body
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"parameters":null,"analyst":null,"model":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("decoded %s record does not encode: %v", kind, err)
		}
		w, err := decode(again)
		if err != nil {
			t.Fatalf("re-encoded %s record does not decode: %v\n%s", kind, err, again)
		}
		if third, err := json.Marshal(w); err != nil || !bytes.Equal(third, again) {
			t.Fatalf("%s record: re-encoding is not stable: %v\n%s\n%s", kind, err, again, third)
		}
	})
}

func FuzzDecodeSetup(f *testing.F)      { fuzzDecoder(f, "setup", DecodeSetup) }
func FuzzDecodeApproval(f *testing.F)   { fuzzDecoder(f, "approval", DecodeApproval) }
func FuzzDecodeTranscript(f *testing.F) { fuzzDecoder(f, "transcript", DecodeTranscript) }
func FuzzDecodeModel(f *testing.F)      { fuzzDecoder(f, "model", DecodeModel) }
func FuzzDecodeReceipt(f *testing.F)    { fuzzDecoder(f, "receipt", DecodeReceipt) }
func FuzzDecodeOutcome(f *testing.F)    { fuzzDecoder(f, "outcome", DecodeOutcome) }
