package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/protocols"
	"github.com/synod-mpc/synod/protocols/session"
)

// Starting the sessions this node coordinates: each checks what it can
// before any party hears of it, picks the participants and starts a
// coordinator machine with its job.

// pingAll asks every party whether it is up, in parallel.
func (n *Node) pingAll(ctx context.Context) map[string]*synodv1.PingResponse {
	type answer struct {
		id   string
		resp *synodv1.PingResponse
		err  error
	}
	ch := make(chan answer, len(n.parties))
	for _, p := range n.parties {
		go func() {
			if p == n.cfg.ID {
				r, _ := n.Ping(ctx, nil)
				ch <- answer{p, r, nil}
				return
			}
			cctx, cancel := context.WithTimeout(ctx, n.cfg.Timeouts.Peer)
			defer cancel()
			r, err := n.peers.Ping(cctx, p)
			ch <- answer{p, r, err}
		}()
	}
	out := map[string]*synodv1.PingResponse{}
	for range n.parties {
		a := <-ch
		if a.err == nil {
			out[a.id] = a.resp
		} else {
			n.log.Info("party unreachable", "peer", a.id, "error", a.err)
		}
	}
	return out
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

// coordinatorConfig is the part of every coordinator's configuration that
// comes from the node.
func (n *Node) coordinatorConfig(id string, participants []string, st *keyState) session.CoordinatorConfig {
	cfg := session.CoordinatorConfig{Session: id, Self: protocols.PartyID(n.cfg.ID), Participants: partyIDs(participants),
		Threshold: n.cons.Threshold, Timeouts: session.Timeouts{Stage: 2 * n.cfg.Timeouts.Peer}}
	if st != nil {
		cfg.Keys = st.keys()
	}
	return cfg
}

// runSetup coordinates the consortium key generation. Every party must take part.
func (n *Node) runSetup(ctx context.Context, paramsName string) (*driver, error) {
	if paramsName == "" {
		paramsName = n.cons.Parameters
	}
	params, err := engine.ParametersByName(paramsName)
	if err != nil {
		return nil, err
	}
	if st := n.keyState(); st != nil {
		return nil, fmt.Errorf("the consortium is already set up (parameters %s, digest %x); remove the parties' setup files to start over", st.Meta.Parameters, st.Meta.Digest[:8])
	}
	alive := n.pingAll(ctx)
	var missing []string
	for _, p := range n.parties {
		if _, ok := alive[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("setup needs every party; unreachable: %s", strings.Join(missing, ", "))
	}
	id := newSessionID()
	cfg := n.coordinatorConfig(id, n.parties, nil)
	cfg.Job = &session.SetupJob{Params: params, Parties: partyIDs(n.parties), Threshold: n.cons.Threshold, Timeout: n.cfg.Timeouts.Session}
	return n.startCoordinator(id, n.parties, "", n.cfg.Timeouts.Session, func() (session.Stepper, session.Ready) {
		return session.NewCoordinator(cfg)
	}), nil
}

// startApproved starts a session that the parties approve first: a query,
// a validation, a training.
func (n *Node) startApproved(ctx context.Context, analyst string, spec *synodv1.QuerySpec, st *keyState, job func(id string) (session.Job, error)) (*driver, error) {
	ready := n.readyParties(ctx, st)
	if len(ready) < n.cons.Threshold {
		return nil, fmt.Errorf("only %d of %d parties are reachable and set up (%s); the threshold is %d, so nothing can be decrypted and nothing was released",
			len(ready), len(n.parties), strings.Join(ready, ", "), n.cons.Threshold)
	}
	specBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	if err != nil {
		return nil, err
	}
	id := newSessionID()
	j, err := job(id)
	if err != nil {
		return nil, err
	}
	cfg := n.coordinatorConfig(id, ready, st)
	cfg.Analyst, cfg.Spec, cfg.Approve, cfg.Job = analyst, specBytes, true, j
	d := n.startCoordinator(id, ready, analyst, n.cfg.Timeouts.Session, func() (session.Stepper, session.Ready) {
		c, r := session.NewCoordinator(cfg)
		r.Events = append([]session.Event{{Stage: "parties", Message: fmt.Sprintf("%d of %d parties reachable: %s", len(ready), len(n.parties), strings.Join(ready, ", "))}}, r.Events...)
		return c, r
	})
	return d, nil
}

// runQuery coordinates one aggregate query for analyst.
func (n *Node) runQuery(ctx context.Context, analyst string, spec *synodv1.QuerySpec, analystKey []byte) (*driver, error) {
	st := n.keyState()
	if st == nil {
		return nil, fmt.Errorf("the consortium is not set up; run mpcctl setup")
	}
	if err := query.Validate(spec); err != nil {
		return nil, err
	}
	target, err := engine.DecodePublicKey(st.Params, analystKey)
	if err != nil {
		return nil, fmt.Errorf("analyst public key: %w", err)
	}
	scales, err := query.NoiseScales(spec, n.columnBounds(spec.GetDataset()))
	if err != nil {
		return nil, err
	}
	groups, per := query.GroupShape(spec)
	return n.startApproved(ctx, analyst, spec, st, func(string) (session.Job, error) {
		return &session.CellsJob{Target: target, Spec: spec, Labels: query.Layout(spec), Groups: groups, PerGroup: per,
			NoiseScales: scales, Rounds: 1, What: "query"}, nil
	})
}

// runInference coordinates one model validation for analyst.
func (n *Node) runInference(ctx context.Context, analyst string, spec *synodv1.QuerySpec, analystKey []byte) (*driver, error) {
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
	return n.startApproved(ctx, analyst, spec, st, func(string) (session.Job, error) {
		return &session.CellsJob{Target: target, Spec: spec, Labels: bins.Layout(), Rounds: 1, What: "validation",
			Intro: fmt.Sprintf("validation of model %s (%x) on %s: %d score bins, %d calibration bins, %d encrypted cells per party",
				modelName(spec), digest(spec.GetInference().GetModel())[:8], spec.GetDataset(), bins.ROC, bins.Calibration, bins.Cells())}, nil
	})
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
