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
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/wire"
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
	cs, err := n.runSetup(context.Background(), req.GetParameters(), nil)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	return streamEvents(stream.Context(), cs, stream.Send)
}

// SubmitQuery reads the spec and the analyst's key and starts the session.
func (n *Node) SubmitQuery(stream grpc.ClientStreamingServer[synodv1.SubmitQueryRequest, synodv1.SubmitQueryResponse]) error {
	caller, _, err := pki.PeerFromContext(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "%v", err)
	}
	var spec *synodv1.QuerySpec
	var key wire.Assembler
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
	if spec.GetInference() != nil {
		run = n.runInference // model validation (infer.go)
	}
	cs, err := run(stream.Context(), caller, spec, keyBytes)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	n.log.Info("query submitted", "session", cs.id, "analyst", caller, "dataset", spec.GetDataset())
	return stream.SendAndClose(&synodv1.SubmitQueryResponse{Session: cs.id})
}

func (n *Node) coordSessionFor(id string) (*coordSession, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cs, ok := n.coords[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no session %q coordinated by %s", id, n.cfg.ID)
	}
	return cs, nil
}

// Watch streams a session's events until it ends.
func (n *Node) Watch(req *synodv1.WatchRequest, stream grpc.ServerStreamingServer[synodv1.Event]) error {
	cs, err := n.coordSessionFor(req.GetSession())
	if err != nil {
		return err
	}
	return streamEvents(stream.Context(), cs, stream.Send)
}

func streamEvents(ctx context.Context, cs *coordSession, send func(*synodv1.Event) error) error {
	for i := 0; ; {
		evs, wake, closed := cs.events.since(i)
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

// FetchResult sends a finished query's result to the analyst who asked.
func (n *Node) FetchResult(req *synodv1.FetchResultRequest, stream grpc.ServerStreamingServer[synodv1.FetchResultResponse]) error {
	caller, _, err := pki.PeerFromContext(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "%v", err)
	}
	cs, err := n.coordSessionFor(req.GetSession())
	if err != nil {
		return err
	}
	if cs.analyst != caller {
		return status.Errorf(codes.PermissionDenied, "session %s belongs to another analyst", cs.id)
	}
	cs.mu.Lock()
	res, serr := cs.result, cs.err
	cs.mu.Unlock()
	switch {
	case serr != nil:
		return status.Errorf(codes.Aborted, "session %s failed: %v", cs.id, serr)
	case res == nil:
		return status.Errorf(codes.Unavailable, "session %s is still running", cs.id)
	}
	if err := stream.Send(&synodv1.FetchResultResponse{Part: &synodv1.FetchResultResponse_Metadata{Metadata: res.meta}}); err != nil {
		return err
	}
	if err := wire.SendChunks(func(c *synodv1.Chunk) error {
		return stream.Send(&synodv1.FetchResultResponse{Part: &synodv1.FetchResultResponse_Ciphertext{Ciphertext: c}})
	}, res.ciphertext); err != nil {
		return err
	}
	// Record the release itself; the analyst already holds the transcript's
	// receipt, so this does not hold the answer back.
	cs.releaseOnce.Do(func() {
		go func() {
			rec := receiptRecord{Analyst: caller, ResultDigest: hex.EncodeToString(digest(res.ciphertext)),
				TranscriptTx: hex.EncodeToString(res.meta.GetReceipt().GetTxHash()), Released: time.Now().UTC()}
			if _, err := n.record(context.Background(), ledger.KindReceipt, cs.id, rec); err != nil {
				n.log.Warn("could not record the release", "session", cs.id, "error", err)
			}
		}()
	})
	return nil
}
