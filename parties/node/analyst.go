package node

import (
	"context"
	"encoding/hex"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/wire"
	"github.com/synod-mpc/synod/protocols/session"
)

// ListParties reports every party and whether it answers.
func (n *Node) ListParties(ctx context.Context, _ *synodv1.ListPartiesRequest) (*synodv1.ListPartiesResponse, error) {
	alive := n.pingAll(ctx)
	resp := &synodv1.ListPartiesResponse{Threshold: int32(n.cons.Threshold), Parameters: n.cons.Parameters}
	if st := n.keyState(); st != nil {
		resp.Parameters = st.Meta.Parameters
	}
	for _, m := range n.cons.Parties() {
		info := &synodv1.PartyInfo{Id: m.ID, Address: m.Address}
		if r, ok := alive[m.ID]; ok {
			info.Reachable, info.SetupDone, info.BytesSent = true, r.GetSetupDone(), r.GetBytesSent()
		} else {
			info.Error = "unreachable"
		}
		resp.Parties = append(resp.Parties, info)
	}
	return resp, nil
}

// Setup runs the consortium key generation, streaming its progress.
func (n *Node) Setup(req *synodv1.SetupRequest, stream grpc.ServerStreamingServer[synodv1.Event]) error {
	caller, _, _ := pki.PeerFromContext(stream.Context())
	n.log.Info("setup requested", "by", caller, "parameters", req.GetParameters())
	d, err := n.runSetup(context.Background(), req.GetParameters())
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	return streamEvents(stream.Context(), d, stream.Send)
}

// SubmitQuery reads the spec and the analyst's key and starts the session.
func (n *Node) SubmitQuery(stream grpc.ClientStreamingServer[synodv1.SubmitQueryRequest, synodv1.SubmitQueryResponse]) error {
	caller, _, err := pki.PeerFromContext(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "%v", err)
	}
	var spec *synodv1.QuerySpec
	key := wire.Assembler{Budget: n.inbound, Owner: "analyst " + caller}
	defer key.Release()
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch part := msg.GetPart().(type) {
		case *synodv1.SubmitQueryRequest_Spec:
			if spec != nil {
				return status.Errorf(codes.InvalidArgument, "query spec sent twice")
			}
			spec = part.Spec
		case *synodv1.SubmitQueryRequest_AnalystKey:
			if err := key.Add(part.AnalystKey); err != nil {
				return status.Errorf(codes.InvalidArgument, "analyst key: %v", err)
			}
		default:
			return status.Errorf(codes.InvalidArgument, "empty submit message")
		}
	}
	keyBytes, err := key.Bytes()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "analyst key: %v", err)
	}
	run := n.runQuery
	switch {
	case spec.GetInference() != nil:
		run = n.runInference // model validation (infer.go)
	case spec.GetTraining() != nil:
		run = n.runTraining // train.go
	}
	d, err := run(stream.Context(), caller, spec, keyBytes)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	n.log.Info("query submitted", "session", d.id, "analyst", caller, "dataset", spec.GetDataset())
	return stream.SendAndClose(&synodv1.SubmitQueryResponse{Session: d.id})
}

func (n *Node) coordSessionFor(id string) (*driver, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, ok := n.coords[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no session %q coordinated by %s", id, n.cfg.ID)
	}
	return d, nil
}

// Watch streams a session's events until it ends.
func (n *Node) Watch(req *synodv1.WatchRequest, stream grpc.ServerStreamingServer[synodv1.Event]) error {
	cs, err := n.coordSessionFor(req.GetSession())
	if err != nil {
		return err
	}
	return streamEvents(stream.Context(), cs, stream.Send)
}

func streamEvents(ctx context.Context, d *driver, send func(*synodv1.Event) error) error {
	for i := 0; ; {
		evs, wake, closed := d.events.since(i)
		for _, ev := range evs {
			if err := send(ev); err != nil {
				return err
			}
		}
		i += len(evs)
		if closed && len(evs) == 0 {
			return nil
		}
		if closed {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// FetchResult sends a session's result to the analyst who asked: the
// result of a round of a multi-round session, or the session's (last) one.
func (n *Node) FetchResult(req *synodv1.FetchResultRequest, stream grpc.ServerStreamingServer[synodv1.FetchResultResponse]) error {
	caller, _, err := pki.PeerFromContext(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "%v", err)
	}
	d, err := n.coordSessionFor(req.GetSession())
	if err != nil {
		return err
	}
	if d.analyst != caller {
		return status.Errorf(codes.PermissionDenied, "session %s belongs to another analyst", d.id)
	}
	res, st, serr := d.result(int(req.GetRound()))
	switch {
	case res == nil && serr != nil:
		return status.Errorf(codes.Aborted, "session %s failed: %v", d.id, serr)
	case res == nil && req.GetRound() > 0:
		return status.Errorf(codes.Unavailable, "session %s has not released round %d", d.id, req.GetRound())
	case res == nil:
		return status.Errorf(codes.Unavailable, "session %s is still running (%s)", d.id, st)
	}
	if err := stream.Send(&synodv1.FetchResultResponse{Part: &synodv1.FetchResultResponse_Metadata{Metadata: res.Meta}}); err != nil {
		return err
	}
	if err := wire.SendChunks(func(c *synodv1.Chunk) error {
		return stream.Send(&synodv1.FetchResultResponse{Part: &synodv1.FetchResultResponse_Ciphertext{Ciphertext: c}})
	}, res.Ciphertext); err != nil {
		return err
	}
	if req.GetRound() > 0 && !res.Meta.GetFinal() {
		return nil
	}
	// Record the release itself; the analyst already holds the transcript's
	// receipt, so this does not hold the answer back.
	d.released.Do(func() {
		go func() {
			rec := records.Receipt{Analyst: caller, ResultDigest: hex.EncodeToString(digest(res.Ciphertext)),
				TranscriptTx: hex.EncodeToString(res.Meta.GetReceipt().GetTxHash()), Released: time.Now().UTC()}
			if _, err := n.record(context.Background(), ledger.KindReceipt, d.id, rec); err != nil {
				n.log.Warn("could not record the release", "session", d.id, "error", err)
			}
		}()
	})
	return nil
}

// Continue hands a multi-round session the analyst's next step.
func (n *Node) Continue(ctx context.Context, req *synodv1.ContinueRequest) (*synodv1.ContinueResponse, error) {
	caller, _, err := pki.PeerFromContext(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "%v", err)
	}
	d, err := n.coordSessionFor(req.GetSession())
	if err != nil {
		return nil, err
	}
	if d.analyst != caller {
		return nil, status.Errorf(codes.PermissionDenied, "session %s belongs to another analyst", d.id)
	}
	if err := d.feed(session.Continue{Round: int(req.GetRound()), Coefficients: req.GetCoefficients(), Stop: req.GetStop()}); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	return &synodv1.ContinueResponse{}, nil
}
