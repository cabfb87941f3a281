package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/wire"
	"github.com/synod-mpc/synod/protocols"
)

// Private prediction.
//
// A model owner (an analyst) fetches the collective public key
// (CollectiveKey), encrypts the model's weights under it
// (engine/model.EncryptModelForPrediction) and uploads them (UploadModel):
// the node it talks to coordinates a session that hands the encrypted model
// to every reachable party; each checks it (decoding is strict: sizes from
// the public architecture, every ciphertext checked against the parameter
// set) and stores it under its name; the upload is recorded on the chain
// (a transcript record naming the owner, the model digest and the parties
// that stored it). Nobody can decrypt the weights: they are under the
// collective key.
//
// A party then predicts its own records (Predict, called with the party's
// own certificate): it evaluates the encrypted weights on its records, which
// it holds in the clear, as plaintexts (engine/model.EvaluatePlainRecords),
// and coordinates a session in which t parties switch each batch of
// predictions to a fresh RLWE key of this party alone, with flooded shares
// (the same keyswitch messages as a query's). It decrypts them and writes
// them to a CSV file in its data directory; the session's transcript goes
// on the chain. The model owner never sees the party's records, the other
// parties see ciphertexts only, nobody but the party sees the predictions.
//
// Trust: parties are honest-but-curious (DESIGN.md). The key-switching
// parties check that the model is stored and open to the requester but not
// what the ciphertext they switch holds: a malicious requester could ask
// them to switch an encrypted weight. A logistic regression is extractable
// from d+1 chosen predictions anyway; a zero-knowledge proof of correct
// evaluation is out of scope.

// Message kinds of model upload and prediction sessions ("query." kinds are
// addressed to the coordinator, see isControl).
const (
	kindModelStore   = "model.store"         // coordinator → party: encrypted model to store
	kindModelStored  = "query.model.stored"  // party → coordinator: stored (payload: digest)
	kindPredictStart = "predict.start"       // requesting party → key switchers: predictStart
	kindPredictReady = "query.predict.ready" // key switcher → requesting party: will switch
)

var modelNameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)

func checkModelName(name string) error {
	if !modelNameRE.MatchString(name) {
		return fmt.Errorf("model name %q: want 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'", name)
	}
	return nil
}

const modelsDir = "models"

func (n *Node) modelPaths(name string) (blob, meta string) {
	dir := filepath.Join(n.cfg.DataDir, modelsDir)
	return filepath.Join(dir, name+".model"), filepath.Join(dir, name+".json")
}

// CollectiveKey sends the collective public key.
func (n *Node) CollectiveKey(_ *synodv1.CollectiveKeyRequest, stream grpc.ServerStreamingServer[synodv1.CollectiveKeyResponse]) error {
	st := n.keyState()
	if st == nil {
		return status.Errorf(codes.FailedPrecondition, "the consortium is not set up; run mpcctl setup")
	}
	b, err := engine.MarshalPublicKey(st.Result.PublicKey)
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	meta := &synodv1.CollectiveKeyMetadata{Parameters: st.Meta.Parameters, SetupSession: st.Meta.Session, SetupDigest: st.Meta.Digest, KeyDigest: digest(b)}
	if err := stream.Send(&synodv1.CollectiveKeyResponse{Part: &synodv1.CollectiveKeyResponse_Metadata{Metadata: meta}}); err != nil {
		return err
	}
	return wire.SendChunks(func(c *synodv1.Chunk) error {
		return stream.Send(&synodv1.CollectiveKeyResponse{Part: &synodv1.CollectiveKeyResponse_Key{Key: c}})
	}, b)
}

// checkUpload validates an encrypted model against its header and this
// node's keys. Errors name the part at fault.
func checkUpload(st *keyState, h *synodv1.ModelHeader, blob []byte) (*model.EncryptedModel, error) {
	if h == nil {
		return nil, errors.New("model upload: no header")
	}
	if err := checkModelName(h.GetName()); err != nil {
		return nil, fmt.Errorf("model upload: %w", err)
	}
	if h.GetParameters() != st.Meta.Parameters {
		return nil, fmt.Errorf("model upload %s: encrypted for parameter set %q, the consortium uses %q", h.GetName(), h.GetParameters(), st.Meta.Parameters)
	}
	pk, err := engine.MarshalPublicKey(st.Result.PublicKey)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(h.GetKeyDigest(), digest(pk)) {
		return nil, fmt.Errorf("model upload %s: encrypted under key %x, the collective key is %x", h.GetName(), h.GetKeyDigest(), digest(pk)[:8])
	}
	for _, p := range h.GetParties() {
		if p == "" {
			return nil, fmt.Errorf("model upload %s: empty party name", h.GetName())
		}
	}
	em, err := model.UnmarshalEncryptedModel(st.Params, blob)
	if err != nil {
		return nil, fmt.Errorf("model upload %s: %w", h.GetName(), err)
	}
	arch, err := em.Arch.MarshalJSON()
	if err != nil {
		return nil, err
	}
	hdrArch, err := model.ParseJSON(h.GetArchitecture())
	if err != nil {
		return nil, fmt.Errorf("model upload %s: header architecture: %w", h.GetName(), err)
	}
	if ha, _ := hdrArch.MarshalJSON(); !bytes.Equal(ha, arch) {
		return nil, fmt.Errorf("model upload %s: the header's architecture differs from the encrypted model's", h.GetName())
	}
	return em, nil
}

// UploadModel receives an encrypted model and has every reachable party
// store it.
func (n *Node) UploadModel(stream grpc.ClientStreamingServer[synodv1.UploadModelRequest, synodv1.UploadModelResponse]) error {
	caller, _, err := pki.PeerFromContext(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "%v", err)
	}
	st := n.keyState()
	if st == nil {
		return status.Errorf(codes.FailedPrecondition, "the consortium is not set up; run mpcctl setup")
	}
	var header *synodv1.ModelHeader
	var asm wire.Assembler
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch part := msg.GetPart().(type) {
		case *synodv1.UploadModelRequest_Header:
			if header != nil {
				return status.Errorf(codes.InvalidArgument, "model upload: header sent twice")
			}
			header = part.Header
		case *synodv1.UploadModelRequest_Model:
			if err := asm.Add(part.Model); err != nil {
				return status.Errorf(codes.InvalidArgument, "model upload: %v", err)
			}
		default:
			return status.Errorf(codes.InvalidArgument, "model upload: empty message")
		}
	}
	blob, err := asm.Bytes()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "model upload: %v", err)
	}
	if _, err := checkUpload(st, header, blob); err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	ready := n.readyParties(stream.Context(), st)
	if len(ready) == 0 {
		return status.Errorf(codes.Unavailable, "no party is reachable")
	}
	cs := n.newCoordSession(context.Background(), ready)
	cs.analyst, cs.started = caller, time.Now().UTC()
	info := &synodv1.ModelInfo{Header: header, Digest: digest(blob), Owner: caller, Session: cs.id, Bytes: uint64(len(blob))}
	n.log.Info("model upload", "session", cs.id, "model", header.GetName(), "owner", caller, "bytes", len(blob))
	resp, err := cs.coordinateUpload(st, info, blob)
	if err != nil {
		return status.Errorf(codes.Aborted, "model upload %s: %v", header.GetName(), err)
	}
	return stream.SendAndClose(resp)
}

// modelRecord is the chain record of a model upload or a prediction (a
// transcript record with the model's identity).
type modelRecord = records.Model

// encodeModelStore is the payload of model.store: the ModelInfo's length
// (4 bytes), the ModelInfo, the encrypted model.
func encodeModelStore(info *synodv1.ModelInfo, blob []byte) ([]byte, error) {
	ib, err := proto.Marshal(info)
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(ib)))
	out = append(out, ib...)
	return append(out, blob...), nil
}

func decodeModelStore(b []byte) (*synodv1.ModelInfo, []byte, error) {
	if len(b) < 4 {
		return nil, nil, errors.New("model.store: truncated")
	}
	n := int(binary.BigEndian.Uint32(b))
	if n > 1<<20 || n > len(b)-4 {
		return nil, nil, fmt.Errorf("model.store: header of %d bytes does not fit", n)
	}
	info := &synodv1.ModelInfo{}
	if err := proto.Unmarshal(b[4:4+n], info); err != nil {
		return nil, nil, fmt.Errorf("model.store: header: %w", err)
	}
	return info, b[4+n:], nil
}

func (cs *coordSession) coordinateUpload(st *keyState, info *synodv1.ModelInfo, blob []byte) (*synodv1.UploadModelResponse, error) {
	n := cs.n
	payload, err := encodeModelStore(info, blob)
	if err != nil {
		cs.finish(err)
		return nil, err
	}
	cs.event("model", "", "storing encrypted model %s (%d bytes, digest %x) at %s", info.GetHeader().GetName(), len(blob), info.GetDigest()[:8], strings.Join(cs.participants, ", "))
	for _, p := range cs.participants {
		if err := cs.post(p, kindModelStore, payload); err != nil {
			err = &partyFault{p, err}
			cs.finish(err)
			return nil, err
		}
	}
	stored := map[string]bool{}
	timeout := time.After(6 * n.cfg.Timeouts.Peer)
	fail := func(err error) (*synodv1.UploadModelResponse, error) {
		cs.finish(err)
		return nil, err
	}
	for len(stored) < len(cs.participants) {
		select {
		case <-cs.ctx.Done():
			return fail(errors.New("upload timed out"))
		case <-timeout:
			return fail(fmt.Errorf("not stored in time by %s", strings.Join(slices.DeleteFunc(slices.Clone(cs.participants), func(p string) bool { return stored[p] }), ", ")))
		case f := <-cs.failures:
			return fail(&partyFault{f.party, fmt.Errorf("unreachable during the upload: %w", f.err)})
		case env := <-cs.inbox:
			switch env.GetKind() {
			case kindModelStored:
				if !bytes.Equal(env.GetPayload(), info.GetDigest()) {
					return fail(&partyFault{env.GetFrom(), errors.New("stored a model with another digest")})
				}
				stored[env.GetFrom()] = true
				cs.event("model", env.GetFrom(), "%s stored the model", env.GetFrom())
			case kindSessionError:
				return fail(sessionFailure(env))
			default:
				return fail(&partyFault{env.GetFrom(), fmt.Errorf("unexpected %s during the upload", env.GetKind())})
			}
		}
	}
	hb, err := proto.MarshalOptions{Deterministic: true}.Marshal(info.GetHeader())
	if err != nil {
		return fail(err)
	}
	parties := slices.Sorted(mapsKeys(stored))
	rec := modelRecord{Transcript: transcriptRecord{Analyst: info.GetOwner(), Parameters: st.Meta.Parameters, SpecDigest: hex.EncodeToString(digest(hb)),
		SetupID: st.Meta.Session, Participants: cs.participants, Contributors: parties, ResultDigest: hex.EncodeToString(info.GetDigest()),
		Started: cs.started, Finished: time.Now().UTC()},
		Model: info.GetHeader().GetName(), ModelDigest: hex.EncodeToString(info.GetDigest()), Parties: info.GetHeader().GetParties()}
	cs.mu.Lock()
	for _, h := range cs.transcript {
		rec.Messages = append(rec.Messages, hex.EncodeToString(h))
	}
	cs.mu.Unlock()
	receipt, err := n.record(cs.ctx, ledger.KindTranscript, cs.id, rec)
	if err != nil {
		return fail(err)
	}
	cs.event("ledger", "", "model upload recorded at height %d (tx %X)", receipt.Height, receipt.TxHash)
	cs.finish(nil)
	return &synodv1.UploadModelResponse{Session: cs.id, Digest: info.GetDigest(), Parties: parties,
		Receipt: &synodv1.Receipt{Height: receipt.Height, TxHash: receipt.TxHash, SetupSession: st.Meta.Session}}, nil
}

// storeModel is a party's side of an upload: check, store, acknowledge.
func (n *Node) storeModel(ps *partySession, env *synodv1.Envelope) error {
	st := n.keyState()
	if st == nil {
		return fmt.Errorf("%s has no setup keys", n.cfg.ID)
	}
	info, blob, err := decodeModelStore(env.GetPayload())
	if err != nil {
		return &protocols.ProtocolError{Party: protocols.PartyID(env.GetFrom()), Kind: protocols.Kind(env.GetKind()), Err: err}
	}
	if !bytes.Equal(info.GetDigest(), digest(blob)) {
		return &protocols.ProtocolError{Party: protocols.PartyID(env.GetFrom()), Kind: protocols.Kind(env.GetKind()), Err: errors.New("model digest does not match the model")}
	}
	if m, ok := n.cons.Member(info.GetOwner()); !ok || m.Role != "analyst" {
		return fmt.Errorf("model owner %q is not an analyst of the consortium", info.GetOwner())
	}
	if _, err := checkUpload(st, info.GetHeader(), blob); err != nil {
		return &protocols.ProtocolError{Party: protocols.PartyID(env.GetFrom()), Kind: protocols.Kind(env.GetKind()), Err: err}
	}
	info.Session = ps.id
	blobPath, metaPath := n.modelPaths(info.GetHeader().GetName())
	if err := os.MkdirAll(filepath.Dir(blobPath), 0o700); err != nil {
		return fmt.Errorf("store model: %w", err)
	}
	if err := writeFileAtomic(blobPath, blob, 0o600); err != nil {
		return fmt.Errorf("store model: %w", err)
	}
	mb, err := protojson.Marshal(info)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(metaPath, mb, 0o600); err != nil {
		return fmt.Errorf("store model: %w", err)
	}
	n.log.Info("encrypted model stored", "session", ps.id, "model", info.GetHeader().GetName(), "owner", info.GetOwner(), "bytes", len(blob))
	return n.send(ps, protocols.Message{Kind: kindModelStored, To: protocols.PartyID(ps.coordinator), Payload: info.GetDigest()})
}

// loadModelInfo reads a stored model's metadata.
func (n *Node) loadModelInfo(name string) (*synodv1.ModelInfo, error) {
	if err := checkModelName(name); err != nil {
		return nil, err
	}
	_, metaPath := n.modelPaths(name)
	b, err := os.ReadFile(metaPath)
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("no model %q is stored at %s", name, n.cfg.ID)
	}
	if err != nil {
		return nil, err
	}
	info := &synodv1.ModelInfo{}
	if err := protojson.Unmarshal(b, info); err != nil {
		return nil, fmt.Errorf("model %s metadata: %w", name, err)
	}
	return info, nil
}

// ListModels lists the models stored here.
func (n *Node) ListModels(context.Context, *synodv1.ListModelsRequest) (*synodv1.ListModelsResponse, error) {
	entries, err := os.ReadDir(filepath.Join(n.cfg.DataDir, modelsDir))
	if err != nil && !os.IsNotExist(err) {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	resp := &synodv1.ListModelsResponse{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if info, err := n.loadModelInfo(name); err == nil {
			resp.Models = append(resp.Models, info)
		}
	}
	return resp, nil
}

// predictStart is the payload of predict.start.
type predictStart struct {
	Model   string `json:"model"`
	Digest  []byte `json:"digest"`
	Dataset string `json:"dataset"`
	Records int    `json:"records"`
	Batches int    `json:"batches"`
}

// answerPredictStart is a key switcher's consent to a prediction session:
// the model is stored here with the same digest and open to the requester.
// Only then will it switch this session's ciphertexts (ps.queried).
func (n *Node) answerPredictStart(ps *partySession, env *synodv1.Envelope) error {
	var req predictStart
	if err := json.Unmarshal(env.GetPayload(), &req); err != nil {
		return &protocols.ProtocolError{Party: protocols.PartyID(env.GetFrom()), Kind: protocols.Kind(env.GetKind()), Err: err}
	}
	info, err := n.loadModelInfo(req.Model)
	if err != nil {
		return err
	}
	if !bytes.Equal(info.GetDigest(), req.Digest) {
		return fmt.Errorf("model %s here has digest %x, the request names %x", req.Model, info.GetDigest(), req.Digest)
	}
	if allowed := info.GetHeader().GetParties(); len(allowed) > 0 && !slices.Contains(allowed, ps.coordinator) {
		return fmt.Errorf("model %s is not open to %s", req.Model, ps.coordinator)
	}
	ps.queried = true
	n.log.Info("prediction key switches accepted", "session", ps.id, "requester", ps.coordinator, "model", req.Model, "batches", req.Batches)
	return n.send(ps, protocols.Message{Kind: kindPredictReady, To: protocols.PartyID(ps.coordinator)})
}

// Predict runs a private prediction of this party's own records.
func (n *Node) Predict(req *synodv1.PredictRequest, stream grpc.ServerStreamingServer[synodv1.Event]) error {
	caller, role, err := pki.PeerFromContext(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "%v", err)
	}
	if caller != n.cfg.ID || role != pki.RoleParty {
		return status.Errorf(codes.PermissionDenied, "only %s itself (its own certificate) may predict its records; caller is %s", n.cfg.ID, caller)
	}
	cs, err := n.startPrediction(stream.Context(), req)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	return streamEvents(stream.Context(), cs, stream.Send)
}

func (n *Node) startPrediction(ctx context.Context, req *synodv1.PredictRequest) (*coordSession, error) {
	st := n.keyState()
	if st == nil {
		return nil, errors.New("the consortium is not set up; run mpcctl setup")
	}
	info, err := n.loadModelInfo(req.GetModel())
	if err != nil {
		return nil, err
	}
	blobPath, _ := n.modelPaths(req.GetModel())
	blob, err := os.ReadFile(blobPath)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", req.GetModel(), err)
	}
	if !bytes.Equal(digest(blob), info.GetDigest()) {
		return nil, fmt.Errorf("model %s: stored bytes do not match the recorded digest", req.GetModel())
	}
	em, err := model.UnmarshalEncryptedModel(st.Params, blob)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", req.GetModel(), err)
	}
	table, ok := n.datasets[req.GetDataset()]
	if !ok {
		return nil, fmt.Errorf("dataset %q is not declared by %s", req.GetDataset(), n.cfg.ID)
	}
	if len(req.GetFeatures()) != em.Arch.Inputs {
		return nil, fmt.Errorf("%d feature columns for the %d inputs of model %s", len(req.GetFeatures()), em.Arch.Inputs, req.GetModel())
	}
	cols := make([][]float64, len(req.GetFeatures()))
	for i, f := range req.GetFeatures() {
		if cols[i], err = table.Column(f); err != nil {
			return nil, err
		}
	}
	if table.Rows == 0 {
		return nil, fmt.Errorf("dataset %s has no rows", req.GetDataset())
	}
	out := req.GetOutput()
	if out != "" && (filepath.Base(out) != out || strings.HasPrefix(out, ".") || !modelNameRE.MatchString(strings.TrimSuffix(out, ".csv"))) {
		return nil, fmt.Errorf("output %q: a plain file name in the data directory (letters, digits, - _ .)", out)
	}
	ready := n.readyParties(ctx, st)
	if len(ready) < n.cons.Threshold || !slices.Contains(ready, n.cfg.ID) {
		return nil, fmt.Errorf("only %d of %d parties are reachable and set up (%s); the threshold is %d", len(ready), len(n.parties), strings.Join(ready, ", "), n.cons.Threshold)
	}
	cs := n.newCoordSession(context.Background(), ready)
	cs.analyst, cs.started = n.cfg.ID, time.Now().UTC()
	if out == "" {
		out = "predictions-" + cs.id + ".csv"
	}
	go cs.coordinatePrediction(st, info, em, cols, table.Rows, req.GetDataset(), out)
	return cs, nil
}

// coordinatePrediction evaluates the batches (in parallel with the key
// switches of the previous ones), has each switched to a fresh key of
// this party, decrypts and writes the predictions.
func (cs *coordSession) coordinatePrediction(st *keyState, info *synodv1.ModelInfo, em *model.EncryptedModel, cols [][]float64, rows int, dataset, output string) {
	n := cs.n
	p := st.Params
	pl, err := em.Plan(p)
	if err != nil {
		cs.finish(err)
		return
	}
	batches := (rows + pl.RecordsPerBatch - 1) / pl.RecordsPerBatch
	name := info.GetHeader().GetName()
	cs.event("predict", "", "model %s (%s) on %d records of %s: %d batches of up to %d, %d levels", name, em.Arch, rows, dataset, batches, pl.RecordsPerBatch, pl.Levels+pl.OutputLevel)
	start, err := json.Marshal(predictStart{Model: name, Digest: info.GetDigest(), Dataset: dataset, Records: rows, Batches: batches})
	if err != nil {
		cs.finish(err)
		return
	}
	for _, q := range cs.participants {
		if err := cs.post(q, kindPredictStart, start); err != nil {
			cs.finish(&partyFault{q, err})
			return
		}
	}
	active := map[string]bool{}
	timeout := time.After(2 * n.cfg.Timeouts.Peer)
wait:
	for len(active) < len(cs.participants) {
		select {
		case <-cs.ctx.Done():
			cs.finish(errors.New("prediction timed out"))
			return
		case <-timeout:
			break wait
		case f := <-cs.failures:
			cs.event("predict", f.party, "%s unreachable (%v); continuing without it", f.party, f.err)
		case env := <-cs.inbox:
			switch env.GetKind() {
			case kindPredictReady:
				active[env.GetFrom()] = true
			case kindSessionError:
				cs.event("predict", env.GetFrom(), "%s declined: %v", env.GetFrom(), sessionFailure(env))
			default:
				cs.finish(&partyFault{env.GetFrom(), fmt.Errorf("unexpected %s", env.GetKind())})
				return
			}
		}
	}
	switchers := slices.Sorted(mapsKeys(active))
	if len(switchers) < n.cons.Threshold {
		cs.finish(fmt.Errorf("only %d parties accepted to key-switch (%s), below the threshold %d", len(switchers), strings.Join(switchers, ", "), n.cons.Threshold))
		return
	}
	if em.Arch.Outputs() != 1 {
		cs.finish(fmt.Errorf("model %s has %d outputs; prediction supports one", name, em.Arch.Outputs()))
		return
	}
	evk := rlwe.NewMemEvaluationKeySet(st.Result.RelinearizationKey)
	sk, target := engine.GenKeyPair(p) // fresh, this session only, never stored
	type evaluated struct {
		out *rlwe.Ciphertext
		err error
	}
	// Evaluate ahead of the key switches: batch b+1 is computed while b is
	// being switched.
	results := make([]chan evaluated, batches)
	for b := range results {
		results[b] = make(chan evaluated, 1)
	}
	sem := make(chan struct{}, 2)
	go func() {
		for b := range batches {
			select {
			case sem <- struct{}{}:
			case <-cs.ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem }()
				lo, hi := b*pl.RecordsPerBatch, min((b+1)*pl.RecordsPerBatch, rows)
				records := make([][]float64, hi-lo)
				for j := range records {
					x := make([]float64, len(cols))
					for i, c := range cols {
						x[i] = c[lo+j]
					}
					records[j] = x
				}
				outs, err := model.EvaluateRecords(p, evk, em, records)
				if err == nil {
					err = model.PrepareRelease(p, outs)
				}
				if err != nil {
					results[b] <- evaluated{err: fmt.Errorf("batch %d: %w", b+1, err)}
					return
				}
				results[b] <- evaluated{out: outs[0]}
			}()
		}
	}()
	preds := make([]float64, 0, rows)
	h := sha256.New()
	var group []string
	began := time.Now()
	for b := range batches {
		var ev evaluated
		select {
		case ev = <-results[b]:
		case <-cs.ctx.Done():
			cs.finish(errors.New("prediction timed out"))
			return
		}
		if ev.err != nil {
			cs.finish(ev.err)
			return
		}
		out, g, err := cs.keySwitch(p, ev.out, target, switchers)
		if err != nil {
			cs.finish(err)
			return
		}
		group = g
		ctb, err := out.MarshalBinary()
		if err != nil {
			cs.finish(err)
			return
		}
		h.Write(ctb)
		lo, hi := b*pl.RecordsPerBatch, min((b+1)*pl.RecordsPerBatch, rows)
		v, err := engine.DecryptVector(p, sk, out, hi-lo)
		if err != nil {
			cs.finish(fmt.Errorf("batch %d: %w", b+1, err))
			return
		}
		preds = append(preds, v...)
	}
	took := time.Since(began)
	path := filepath.Join(n.cfg.DataDir, output)
	var buf bytes.Buffer
	buf.WriteString("row,prediction\n")
	for j, v := range preds {
		buf.WriteString(strconv.Itoa(j + 1))
		buf.WriteByte(',')
		buf.WriteString(strconv.FormatFloat(v, 'g', 8, 64))
		buf.WriteByte('\n')
	}
	if err := writeFileAtomic(path, buf.Bytes(), 0o600); err != nil {
		cs.finish(fmt.Errorf("write predictions: %w", err))
		return
	}
	cs.event("predict", "", "%d predictions decrypted by %s in %s (%.0f records/s), written to %s in its data directory", rows, n.cfg.ID,
		took.Round(time.Millisecond), float64(rows)/took.Seconds(), output)
	rec := modelRecord{Transcript: transcriptRecord{Analyst: n.cfg.ID, Parameters: p.Name, SpecDigest: hex.EncodeToString(digest(start)),
		SetupID: st.Meta.Session, Participants: cs.participants, Contributors: []string{n.cfg.ID}, KeySwitchers: group,
		ResultDigest: hex.EncodeToString(h.Sum(nil)), Started: cs.started, Finished: time.Now().UTC()},
		Model: name, ModelDigest: hex.EncodeToString(info.GetDigest())}
	cs.mu.Lock()
	for _, d := range cs.transcript {
		rec.Messages = append(rec.Messages, hex.EncodeToString(d))
	}
	cs.mu.Unlock()
	receipt, err := n.record(cs.ctx, ledger.KindTranscript, cs.id, rec)
	if err != nil {
		cs.finish(err)
		return
	}
	cs.event("ledger", "", "prediction transcript recorded at height %d (tx %X)", receipt.Height, receipt.TxHash)
	cs.finish(nil)
}
