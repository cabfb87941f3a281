package analyst

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/parties/wire"
)

// Session is a finished session's result as the analyst holds it.
type Session struct {
	Params     engine.Parameters
	SecretKey  *engine.SecretKey // the analyst's RLWE key the result is switched to
	Meta       *synodv1.ResultMetadata
	Ciphertext []byte
	Took       time.Duration // on the coordinator, from its first event to its last
}

// Progress follows a session as Run goes; nil fields are not called.
type Progress struct {
	// Submitted is called once the node accepted the session.
	Submitted func(session string)
	// Event is called for each of the session's events.
	Event EventFunc
}

// FailedError is a session that ran and failed: the coordinator's final
// event says why.
type FailedError struct {
	Session string
	Reason  string
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("session %s failed: %s", e.Session, e.Reason)
}

// Run submits spec (a query or a validation) with the analyst's RLWE public
// key, follows the session to its end, fetches the result and keeps it,
// with its receipt, in the analyst's result store for audit.
func (c *Client) Run(ctx context.Context, spec *synodv1.QuerySpec, progress Progress) (*Session, error) {
	if c.cfg == nil {
		return nil, errors.New("run a session: the client has no analyst config (connect with Connect)")
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
	ev, took, err := c.Watch(ctx, session, progress.Event)
	if err != nil {
		return nil, err
	}
	if ev.GetFailed() {
		return nil, &FailedError{Session: session, Reason: ev.GetMessage()}
	}
	meta, ct, err := c.Fetch(ctx, session)
	if err != nil {
		return nil, err
	}
	if err := (Results{DataDir: c.cfg.DataDir}).Save(meta, ct); err != nil {
		return nil, fmt.Errorf("keep the result for audit: %w", err)
	}
	return &Session{Params: params, SecretKey: sk, Meta: meta, Ciphertext: ct, Took: took}, nil
}

// Submit submits spec; the result will be switched to analystKey. It
// returns the session id.
func (c *Client) Submit(ctx context.Context, spec *synodv1.QuerySpec, analystKey *engine.PublicKey) (string, error) {
	pkBytes, err := analystKey.MarshalBinary()
	if err != nil {
		return "", err
	}
	stream, err := c.rpc.SubmitQuery(ctx)
	if err != nil {
		return "", err
	}
	if err := stream.Send(&synodv1.SubmitQueryRequest{Part: &synodv1.SubmitQueryRequest_Spec{Spec: spec}}); err != nil {
		return "", err
	}
	// io.EOF: the node closed the stream; CloseAndRecv says why.
	if err := wire.SendChunks(func(ch *synodv1.Chunk) error {
		return stream.Send(&synodv1.SubmitQueryRequest{Part: &synodv1.SubmitQueryRequest_AnalystKey{AnalystKey: ch}})
	}, pkBytes); err != nil && err != io.EOF {
		return "", err
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return "", err
	}
	return resp.GetSession(), nil
}

// Watch follows a session's events to its end (see Follow).
func (c *Client) Watch(ctx context.Context, session string, onEvent EventFunc) (*synodv1.Event, time.Duration, error) {
	stream, err := c.rpc.Watch(ctx, &synodv1.WatchRequest{Session: session})
	if err != nil {
		return nil, 0, err
	}
	return Follow(stream.Recv, onEvent)
}

// Fetch fetches a finished session's result: its metadata (with the
// receipt) and the result ciphertext, switched to the analyst's key.
func (c *Client) Fetch(ctx context.Context, session string) (*synodv1.ResultMetadata, []byte, error) {
	return c.FetchRound(ctx, session, 0)
}

// FetchRound fetches the result of one round of a multi-round session (0:
// the session's result).
func (c *Client) FetchRound(ctx context.Context, session string, round int) (*synodv1.ResultMetadata, []byte, error) {
	stream, err := c.rpc.FetchResult(ctx, &synodv1.FetchResultRequest{Session: session, Round: uint32(round)})
	if err != nil {
		return nil, nil, err
	}
	var meta *synodv1.ResultMetadata
	var ct wire.Assembler
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		switch p := msg.GetPart().(type) {
		case *synodv1.FetchResultResponse_Metadata:
			meta = p.Metadata
		case *synodv1.FetchResultResponse_Ciphertext:
			if err := ct.Add(p.Ciphertext); err != nil {
				return nil, nil, fmt.Errorf("result: %w", err)
			}
		}
	}
	if meta == nil {
		return nil, nil, fmt.Errorf("result without metadata")
	}
	b, err := ct.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("result: %w", err)
	}
	return meta, b, nil
}

// decrypt decrypts the first n slots of the result.
func (s *Session) decrypt(n int) ([]float64, error) {
	ct, err := engine.DecodeCiphertext(s.Params, s.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("result ciphertext: %w", err)
	}
	return engine.DecryptVector(s.Params, s.SecretKey, ct, n)
}

// Cells decrypts a query's result into its cells (query.Finish), the cells
// of groups below the minimum cohort marked suppressed.
func (s *Session) Cells() ([]query.Cell, error) {
	slots, err := s.decrypt(len(s.Meta.GetSlots()))
	if err != nil {
		return nil, err
	}
	spec := s.Meta.GetSpec()
	cells, err := query.Finish(spec, slots)
	if err != nil {
		return nil, err
	}
	_, per := query.GroupShape(spec)
	query.Suppress(spec, cells, func(g int) bool { return s.Meta.GetSlots()[g*per].GetSuppressed() })
	return cells, nil
}

// Metrics decrypts a validation's result into its metrics, after checking
// that it is the validation of modelJSON (the model as submitted) with the
// layout of bins.
func (s *Session) Metrics(modelJSON []byte, bins model.Bins) (*model.Metrics, error) {
	if got := s.Meta.GetSpec().GetInference(); got == nil || string(got.GetModel()) != string(modelJSON) {
		return nil, fmt.Errorf("the result is for another validation than the one submitted")
	}
	if len(s.Meta.GetSlots()) != bins.Cells() {
		return nil, fmt.Errorf("result has %d slots, the validation's layout %d", len(s.Meta.GetSlots()), bins.Cells())
	}
	cells, err := s.decrypt(bins.Cells())
	if err != nil {
		return nil, err
	}
	return bins.Metrics(cells)
}
