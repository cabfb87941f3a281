package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
	"github.com/synod-mpc/synod/parties/policy"
	"github.com/synod-mpc/synod/parties/query"
)

// A party's policy is applied twice: when it approves a query (before any
// data moves) and again when the certified request arrives. The privacy
// budget an analyst has spent is read from the chain: every approval
// record carries its spec, and the spec its epsilon. An approved query
// counts as spent whether or not it completes, since the parties may have
// contributed noisy values by the time it fails.

// policyCheck applies this party's policy to a valid spec; it returns a
// *policy.Refusal naming the rule, or another error when the check itself
// could not run.
// The approval of session itself is left out of the spent budget (when the
// certified request is checked, it is already on the chain).
func (n *Node) policyCheck(ctx context.Context, spec *synodv1.QuerySpec, analyst, session string) error {
	req := policy.Request{Analyst: analyst, Dataset: spec.GetDataset(), Columns: query.Columns(spec), Epsilon: spec.GetPrivacy().GetEpsilon(),
		ReleasesGram: spec.GetTraining().GetMode() == synodv1.Training_EXACT}
	pol := &n.cfg.Policy
	if pol.DP.Budget > 0 && req.Epsilon > 0 {
		spent, err := n.spentEpsilon(ctx, analyst, session)
		if err != nil {
			return fmt.Errorf("privacy budget of %s: %w", analyst, err)
		}
		req.Spent = spent
	}
	return pol.Check(req)
}

// spentEpsilon adds up the epsilon of every query of analyst approved on
// the chain, except in session except.
func (n *Node) spentEpsilon(ctx context.Context, analyst, except string) (float64, error) {
	recs, err := n.chain.Records(ctx, ledger.KindApproval)
	if err != nil {
		return 0, err
	}
	var spent float64
	for _, r := range recs {
		a, err := records.DecodeApproval(r.Tx.Body)
		if err != nil || a.Analyst != analyst || r.Tx.Session == except {
			continue
		}
		raw, err := hex.DecodeString(a.Spec)
		if err != nil {
			continue
		}
		spec := &synodv1.QuerySpec{}
		if proto.Unmarshal(raw, spec) != nil {
			continue
		}
		if eps := spec.GetPrivacy().GetEpsilon(); eps > 0 && !math.IsInf(eps, 0) {
			spent += eps
		}
	}
	return spent, nil
}

// columnBounds gives the value ranges the consortium schema declares for
// a dataset's columns: what bounds the sensitivity of DP sums.
func (n *Node) columnBounds(dataset string) query.Bounds {
	return func(column string) (float64, float64, bool) {
		if n.schema == nil {
			return 0, 0, false
		}
		return n.schema.Bounds(dataset, column)
	}
}

// addNoiseShares adds this party's share of the query's DP noise to its
// partial sums and returns the noise scale of every slot (nil without DP).
// The shares are sized so that any threshold-many of them already carry
// the whole noise: a coordinator cannot shrink the total by claiming more
// contributors than there are, and every share beyond the threshold only
// adds noise (post-processing, so the guarantee holds).
func (n *Node) addNoiseShares(spec *synodv1.QuerySpec, values []float64) ([]float64, error) {
	scales, err := query.NoiseScales(spec, n.columnBounds(spec.GetDataset()))
	if err != nil || scales == nil {
		return nil, err
	}
	if len(scales) != len(values) {
		return nil, fmt.Errorf("privacy: %d noise scales for %d values", len(scales), len(values))
	}
	shares := n.cons.Threshold
	n.noiseMu.Lock()
	defer n.noiseMu.Unlock()
	for i, b := range scales {
		switch spec.GetPrivacy().GetMechanism() {
		case synodv1.Privacy_LAPLACE:
			values[i] += policy.LaplaceShare(n.noise, b, shares)
		case synodv1.Privacy_GAUSSIAN:
			values[i] += policy.GaussianShare(n.noise, b, shares)
		}
	}
	return scales, nil
}
