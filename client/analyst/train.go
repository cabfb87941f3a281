package analyst

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/glm"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/parties/query"
)

// Training: the analyst's side of mpcctl train. In exact mode the analyst
// decrypts each round's summed sufficient statistics and solves
// (engine/glm): once for linear regression; for logistic regression one
// Newton step per round, whose coefficients it sends back (Continue) until
// they converge or the approved rounds run out. In encrypted mode it only
// decrypts the final model.

// TrainProgress follows a training; nil fields are not called.
type TrainProgress struct {
	Submitted func(session string)
	Event     EventFunc
	// Iteration is called after each round the analyst solved.
	Iteration func(it Iteration)
}

// Iteration is one solved round.
type Iteration struct {
	Round int
	// Rows is the number of training rows the round's statistics cover.
	Rows float64
	// Objective is the training objective at the round's coefficients
	// (logistic), or at the solution (linear); GradNorm and StepNorm are
	// Newton's (logistic only).
	Objective, GradNorm, StepNorm float64
	Condition                     float64
	Coefficients                  []float64 // after the round, scaled space
}

// Trained is a finished training as the analyst holds it.
type Trained struct {
	Session    string
	Kind       glm.Kind
	Scaling    glm.Scaling
	Lambda     float64
	Converged  bool
	Iterations []Iteration
	// Coefficients are the model's, in the scaled space of Scaling (b_0
	// the intercept); Model is them in the engine/model format.
	Coefficients []float64
	Model        *model.Model
	Meta         *synodv1.ResultMetadata // of the last round
	Took         time.Duration
}

// convergenceTol is the Newton stopping tolerance (glm.Converged): the
// released statistics carry the key switch's flooding noise (about 1e-4
// per sum, engine.Precision), which bounds how small a step can be seen.
const convergenceTol = 1e-7

// Train submits a training spec, follows it and returns the model.
func (c *Client) Train(ctx context.Context, spec *synodv1.QuerySpec, progress TrainProgress) (*Trained, error) {
	if c.cfg == nil {
		return nil, errors.New("train: the client has no analyst config (connect with Connect)")
	}
	t, err := query.ValidateTraining(spec)
	if err != nil {
		return nil, err
	}
	parties, err := c.Parties(ctx)
	if err != nil {
		return nil, err
	}
	params, err := engine.ParametersByName(parties.GetParameters())
	if err != nil {
		return nil, err
	}
	sk, pk, err := RLWEKey(c.cfg, params)
	if err != nil {
		return nil, err
	}
	session, err := c.Submit(ctx, spec, pk)
	if err != nil {
		return nil, err
	}
	if progress.Submitted != nil {
		progress.Submitted(session)
	}
	// The events tell when a round is released; the loop below fetches
	// and solves it while the events keep coming.
	type final struct {
		ev   *synodv1.Event
		took time.Duration
		err  error
	}
	rounds := make(chan int, 256)
	done := make(chan final, 1)
	go func() {
		ev, took, err := c.Watch(ctx, session, func(ev *synodv1.Event, elapsed time.Duration) {
			if progress.Event != nil {
				progress.Event(ev, elapsed)
			}
			var r int
			if ev.GetStage() == "round" {
				if _, err := fmt.Sscanf(ev.GetMessage(), "round %d released", &r); err == nil {
					rounds <- r
				}
			}
		})
		done <- final{ev, took, err}
	}()
	tr := &Trained{Session: session, Kind: t.Kind, Scaling: t.Scaling, Lambda: t.Spec.GetL2()}
	p := t.Scaling.P()
	b := make([]float64, p)
	results := Results{DataDir: c.cfg.DataDir}
	solve := func(round int) (stop bool, err error) {
		meta, ct, err := c.FetchRound(ctx, session, round)
		if err != nil {
			return false, err
		}
		if err := results.Save(meta, ct); err != nil {
			return false, fmt.Errorf("keep the result for audit: %w", err)
		}
		tr.Meta = meta
		s := &Session{Params: params, SecretKey: sk, Meta: meta, Ciphertext: ct}
		stats, err := s.decrypt(len(meta.GetSlots()))
		if err != nil {
			return false, err
		}
		it := Iteration{Round: max(round, 1)}
		switch t.Kind {
		case glm.Linear:
			sol, err := glm.SolveLinear(stats, p, t.Spec.GetL2())
			if err != nil {
				return false, err
			}
			b, stop = sol.B, true
			it.Rows, it.Objective, it.Condition = math.Round(stats[0]), sol.Objective, sol.Condition
			tr.Converged = true
		case glm.Logistic:
			step, err := glm.NewtonStep(stats, p, b, t.Spec.GetL2())
			if err != nil {
				return false, err
			}
			it.Rows, it.Objective, it.GradNorm, it.StepNorm, it.Condition = math.Round(stats[len(stats)-1]), step.Objective, step.GradNorm, step.StepNorm, step.Condition
			b = step.Next
			tr.Converged = glm.Converged(step, convergenceTol)
			stop = tr.Converged || it.Round >= t.Rounds
		}
		it.Coefficients = append([]float64(nil), b...)
		tr.Iterations = append(tr.Iterations, it)
		if progress.Iteration != nil {
			progress.Iteration(it)
		}
		return stop, nil
	}
	var ended *final // the session's end, seen while rounds were still queued
	if t.Spec.GetMode() == synodv1.Training_EXACT && t.Rounds > 1 {
	rounds:
		for {
			var r int
			select {
			case r = <-rounds:
			case f := <-done:
				if f.err != nil {
					return nil, f.err
				}
				if f.ev.GetFailed() {
					return nil, &FailedError{Session: session, Reason: f.ev.GetMessage()}
				}
				// The last round's event precedes the end: solve it.
				select {
				case r = <-rounds:
					ended = &f
				default:
					return nil, fmt.Errorf("session %s ended before the training converged", session)
				}
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			stop, err := solve(r)
			if err != nil {
				return nil, err
			}
			if r >= t.Rounds || ended != nil {
				break rounds // the session records its transcript and ends
			}
			req := &synodv1.ContinueRequest{Session: session, Round: uint32(r), Stop: stop}
			if !stop {
				req.Coefficients = b
			}
			if _, err := c.rpc.Continue(ctx, req); err != nil {
				return nil, fmt.Errorf("continue session %s: %w", session, err)
			}
			if stop {
				break rounds
			}
		}
	}
	if ended == nil {
		f := <-done
		ended = &f
	}
	f := *ended
	if f.err != nil {
		return nil, f.err
	}
	if f.ev.GetFailed() {
		return nil, &FailedError{Session: session, Reason: f.ev.GetMessage()}
	}
	tr.Took = f.took
	switch {
	case t.Spec.GetMode() == synodv1.Training_ENCRYPTED:
		if err := c.encryptedResult(ctx, tr, t, params, sk); err != nil {
			return nil, err
		}
		b = tr.Coefficients
	case t.Rounds == 1:
		if _, err := solve(0); err != nil {
			return nil, err
		}
	}
	tr.Coefficients = b
	if t.Spec.GetKeepEncrypted() {
		return tr, nil // nobody holds the weights
	}
	if tr.Model, err = glm.ToModel(t.Kind, t.Scaling, b, t.Spec.GetName()); err != nil {
		return nil, err
	}
	return tr, nil
}

// encryptedResult fetches an encrypted training's released model (its
// coefficients in the first slots of one ciphertext) and decrypts it.
func (c *Client) encryptedResult(ctx context.Context, tr *Trained, t *query.Training, params engine.Parameters, sk *engine.SecretKey) error {
	meta, ct, err := c.Fetch(ctx, tr.Session)
	if err != nil {
		return err
	}
	if err := (Results{DataDir: c.cfg.DataDir}).Save(meta, ct); err != nil {
		return fmt.Errorf("keep the result for audit: %w", err)
	}
	tr.Meta = meta
	if t.Spec.GetKeepEncrypted() {
		return nil // stored at the parties; nothing to decrypt
	}
	s := &Session{Params: params, SecretKey: sk, Meta: meta, Ciphertext: ct}
	w, err := s.decrypt(t.Scaling.P())
	if err != nil {
		return err
	}
	for i, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("coefficient %d of the released model is not finite", i)
		}
	}
	tr.Coefficients, tr.Converged = w, true
	return nil
}
