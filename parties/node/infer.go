package node

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/policy"
)

// Model validation ("mpcctl infer"). A validation is a query whose spec
// carries an Inference instead of aggregates: it is proposed, approved
// (threshold-BLS certificate on the chain before any data moves), answered,
// summed, key-switched to the analyst and recorded exactly like an
// aggregate query, reusing the query session's messages and the
// coordinator's approve, keySwitch and record. Only the cells differ: each
// party scores its own records with the analyst's model in the clear (the
// model is the analyst's, the records the party's own: homomorphic
// evaluation there would hide nothing from anyone) and contributes, encrypted
// under the collective key, only the binned counts and sums of
// engine/model.Bins; the sum over parties is what must stay encrypted, and
// only the analyst decrypts it. No per-record score leaves a party.

// inferenceBins returns the binning a spec asks for (defaults for zeros).
func inferenceBins(inf *synodv1.Inference) model.Bins {
	b := model.Bins{ROC: int(inf.GetRocBins()), Calibration: int(inf.GetCalibrationBins())}
	if inf.GetRocBins() > model.MaxROCBins {
		b.ROC = model.MaxROCBins + 1 // refused by Validate, without overflowing int
	}
	if b.ROC == 0 {
		b.ROC = model.DefaultROCBins
	}
	if b.Calibration == 0 {
		b.Calibration = min(model.DefaultCalibrationBins, b.ROC)
	}
	if inf.GetCalibrationBins() > model.MaxROCBins {
		b.Calibration = model.MaxROCBins + 1
	}
	return b
}

// ValidateInference checks a validation spec before any data moves: the
// spec's shape (an inference and nothing an aggregate query would use), the
// model (model.CheckInference) and the binning. mpcctl, the coordinator and
// every party run it. It returns the parsed model and the binning.
func ValidateInference(spec *synodv1.QuerySpec) (*model.Model, model.Bins, error) {
	inf := spec.GetInference()
	switch {
	case inf == nil:
		return nil, model.Bins{}, fmt.Errorf("inference: the spec carries no inference")
	case spec.GetDataset() == "":
		return nil, model.Bins{}, fmt.Errorf("inference: missing dataset")
	case len(spec.GetAggregates()) > 0:
		return nil, model.Bins{}, fmt.Errorf("inference: a validation takes no aggregates")
	case len(spec.GetFilters()) > 0 || spec.GetWhere() != nil:
		return nil, model.Bins{}, fmt.Errorf("inference: filters are not supported with a validation yet")
	case len(spec.GetGroupBy()) > 0:
		return nil, model.Bins{}, fmt.Errorf("inference: GROUP BY is not supported with a validation")
	case spec.GetPrivacy().GetEpsilon() != 0:
		return nil, model.Bins{}, fmt.Errorf("inference: differential privacy is not supported with a validation yet")
	}
	bins := inferenceBins(inf)
	m, err := model.CheckInference(inf.GetModel(), inf.GetFeatures(), inf.GetLabel(), bins)
	if err != nil {
		return nil, model.Bins{}, err
	}
	return m, bins, nil
}

// inferenceQuery is checkQuery for a validation: the spec, the policy, the
// dataset, its columns and a binary label. It returns the reason for
// refusing; partialSums scores the records.
func (n *Node) inferenceQuery(spec *synodv1.QuerySpec, analyst string) (*synodv1.QuerySpec, string) {
	if _, _, err := ValidateInference(spec); err != nil {
		return nil, err.Error()
	}
	inf := spec.GetInference()
	cols := append(slices.Clone(inf.GetFeatures()), inf.GetLabel())
	if err := n.cfg.Policy.Check(policy.Request{Analyst: analyst, Dataset: spec.GetDataset(), Columns: cols}); err != nil {
		return nil, err.Error()
	}
	table, ok := n.datasets[spec.GetDataset()]
	if !ok {
		return nil, fmt.Sprintf("dataset %q is not declared by %s", spec.GetDataset(), n.cfg.ID)
	}
	if mc := n.cfg.Policy.MinCohort; mc > 0 {
		return nil, fmt.Sprintf("policy rule min_cohort: this party requires a minimum cohort of %d, which model validation does not apply to its score bins yet", mc)
	}
	for _, c := range cols {
		if _, err := table.Column(c); err != nil {
			return nil, "inference: " + err.Error()
		}
	}
	if err := checkLabel(table, inf.GetLabel()); err != nil {
		return nil, err.Error()
	}
	return spec, ""
}

// inferenceCells scores every record of t with m and bins the scores with
// the labels. Errors name columns and counts, never a record's values.
func inferenceCells(t *datasource.Table, m *model.Model, bins model.Bins, features []string, label string) ([]float64, error) {
	fcols := make([][]float64, len(features))
	for i, f := range features {
		c, err := t.Column(f)
		if err != nil {
			return nil, fmt.Errorf("inference: feature %d: %w", i+1, err)
		}
		fcols[i] = c
	}
	if err := checkLabel(t, label); err != nil {
		return nil, err
	}
	ycol, err := t.Column(label)
	if err != nil {
		return nil, fmt.Errorf("inference: label: %w", err)
	}
	cells := make([]float64, bins.Cells())
	const batch = 4096
	rec := make([][]float64, 0, batch)
	scores := make([]float64, 0, batch)
	for start := 0; start < t.Rows; start += batch {
		end := min(start+batch, t.Rows)
		rec, scores = rec[:0], scores[:0]
		for r := start; r < end; r++ {
			x := make([]float64, len(fcols))
			for i, c := range fcols {
				x[i] = c[r]
			}
			rec = append(rec, x)
		}
		for j, x := range rec {
			y, err := m.Predict(x)
			if err != nil {
				return nil, fmt.Errorf("inference: record %d: %w", start+j+1, err)
			}
			if math.IsNaN(y[0]) || math.IsInf(y[0], 0) {
				return nil, fmt.Errorf("inference: the model's score of record %d is not finite", start+j+1)
			}
			scores = append(scores, y[0])
		}
		if err := bins.BinScores(cells, scores, ycol[start:end]); err != nil {
			return nil, fmt.Errorf("inference: %w", err)
		}
	}
	return cells, nil
}

// checkLabel checks that the label column holds only 0 and 1.
func checkLabel(t *datasource.Table, label string) error {
	ycol, err := t.Column(label)
	if err != nil {
		return fmt.Errorf("inference: label: %w", err)
	}
	bad := 0
	for _, y := range ycol {
		if y != 0 && y != 1 {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("inference: label column %q of dataset %s must hold 0 or 1; %d of its %d rows do not", label, t.Name, bad, t.Rows)
	}
	return nil
}

// runInference coordinates one validation for analyst: runQuery's checks
// with the validation's own, then coordinateInference.
func (n *Node) runInference(ctx context.Context, analyst string, spec *synodv1.QuerySpec, analystKey []byte) (*coordSession, error) {
	st := n.keyState()
	if st == nil {
		return nil, fmt.Errorf("the consortium is not set up; run mpcctl setup")
	}
	_, bins, err := ValidateInference(spec)
	if err != nil {
		return nil, err
	}
	if bins.Cells() > st.Params.MaxSlots() {
		return nil, fmt.Errorf("inference: %d cells exceed the %d slots of one %s ciphertext", bins.Cells(), st.Params.MaxSlots(), st.Params.Name)
	}
	target, err := engine.DecodePublicKey(st.Params, analystKey)
	if err != nil {
		return nil, fmt.Errorf("analyst public key: %w", err)
	}
	ready := n.readyParties(ctx, st)
	if len(ready) < n.cons.Threshold {
		return nil, fmt.Errorf("only %d of %d parties are reachable and set up (%s); the threshold is %d, so nothing can be decrypted and nothing was released",
			len(ready), len(n.parties), strings.Join(ready, ", "), n.cons.Threshold)
	}
	cs := n.newCoordSession(context.Background(), ready)
	cs.analyst, cs.spec, cs.started = analyst, spec, time.Now().UTC()
	go cs.coordinateInference(st, target, bins)
	return cs, nil
}

// readyParties lists the parties that answer and hold this node's setup keys.
func (n *Node) readyParties(ctx context.Context, st *keyState) []string {
	alive := n.pingAll(ctx)
	var ready []string
	for _, p := range n.parties {
		if r, ok := alive[p]; ok && r.GetSetupDone() && string(r.GetSetupDigest()) == string(st.Meta.Digest) {
			ready = append(ready, p)
		}
	}
	return ready
}

// coordinateInference runs a validation session: approval, request, the
// parties' encrypted cells, their sum, the key switch to the analyst, the
// transcript on the chain, the result.
func (cs *coordSession) coordinateInference(st *keyState, target *rlwe.PublicKey, bins model.Bins) {
	n := cs.n
	params := st.Params
	cs.event("parties", "", "%d of %d parties reachable: %s", len(cs.participants), len(n.parties), strings.Join(cs.participants, ", "))
	specBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(cs.spec)
	if err != nil {
		cs.finish(err)
		return
	}
	cs.event("inference", "", "validation of model %s (%x) on %s: %d score bins, %d calibration bins, %d encrypted cells per party",
		modelName(cs.spec), digest(cs.spec.GetInference().GetModel())[:8], cs.spec.GetDataset(), bins.ROC, bins.Calibration, bins.Cells())
	ap, err := cs.approve(st, specBytes)
	if err != nil {
		cs.finish(err)
		return
	}
	cs.approvalTx, cs.certificate = ap.txHash, ap.certificate
	// No minimum-cohort stage: a party whose policy sets a minimum cohort
	// refuses a validation (its cells are score bins, which the cohort test
	// over GROUP BY groups does not cover yet).
	request, err := json.Marshal(queryRequest{Spec: specBytes, Analyst: cs.analyst, Certificate: ap.certificate})
	if err != nil {
		cs.finish(err)
		return
	}
	for _, p := range ap.approvers {
		if err := cs.post(p, kindQueryRequest, request); err != nil {
			cs.finish(&partyFault{p, err})
			return
		}
	}
	cs.event("inputs", "", "waiting for the parties' encrypted cells (each scores its own records locally)")
	inputs, active, err := collectInputs(cs, ap.approvers, "inputs", func(in *synodv1.QueryInput) (*rlwe.Ciphertext, error) {
		return engine.DecodeCiphertext(params, in.GetValues())
	})
	if err != nil {
		cs.finish(err)
		return
	}
	if len(active) < n.cons.Threshold {
		cs.finish(fmt.Errorf("only %d parties remain, below the threshold %d; nothing was released", len(active), n.cons.Threshold))
		return
	}
	ctBytes, contributors, group, err := cs.sumAndSwitch(params, inputs, target, active)
	if err != nil {
		cs.finish(err)
		return
	}
	meta := &synodv1.ResultMetadata{Session: cs.id, Spec: cs.spec, Parameters: params.Name, Contributors: contributors,
		KeySwitchers: group, Precision: engine.Precision(params, len(group))}
	for _, l := range bins.Layout() {
		meta.Slots = append(meta.Slots, &synodv1.ResultSlot{Label: l})
	}
	cs.release(st, specBytes, meta, ctBytes, nil)
}

// modelName is the name inside a validation's model, for progress messages.
func modelName(spec *synodv1.QuerySpec) string {
	var head struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(spec.GetInference().GetModel(), &head) != nil || head.Name == "" {
		return "(unnamed)"
	}
	return head.Name
}
