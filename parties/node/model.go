package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/wire"
	"github.com/synod-mpc/synod/protocols/session"
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
	asm := wire.Assembler{Budget: n.inbound, Owner: "analyst " + caller}
	defer asm.Release()
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
	id := newSessionID()
	info := &synodv1.ModelInfo{Header: header, Digest: digest(blob), Owner: caller, Session: id, Bytes: uint64(len(blob))}
	n.log.Info("model upload", "session", id, "model", header.GetName(), "owner", caller, "bytes", len(blob))
	cfg := n.coordinatorConfig(id, ready, st)
	cfg.Analyst, cfg.Job = caller, &session.UploadJob{Info: info, Model: blob, Timeout: 6 * n.cfg.Timeouts.Peer}
	d := n.startCoordinator(id, ready, caller, n.cfg.Timeouts.Session, func() (session.Stepper, session.Ready) {
		return session.NewCoordinator(cfg)
	})
	select {
	case <-d.done:
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
	res, _, err := d.result(0)
	if err != nil || res == nil {
		return status.Errorf(codes.Aborted, "model upload %s: %v", header.GetName(), err)
	}
	return stream.SendAndClose(&synodv1.UploadModelResponse{Session: id, Digest: info.GetDigest(),
		Parties: res.Meta.GetContributors(), Receipt: res.Meta.GetReceipt()})
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

// Predict runs a private prediction of this party's own records.
func (n *Node) Predict(req *synodv1.PredictRequest, stream grpc.ServerStreamingServer[synodv1.Event]) error {
	caller, role, err := pki.PeerFromContext(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "%v", err)
	}
	if caller != n.cfg.ID || role != pki.RoleParty {
		return status.Errorf(codes.PermissionDenied, "only %s itself (its own certificate) may predict its records; caller is %s", n.cfg.ID, caller)
	}
	d, err := n.startPrediction(stream.Context(), req)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	return streamEvents(stream.Context(), d, stream.Send)
}

func (n *Node) startPrediction(ctx context.Context, req *synodv1.PredictRequest) (*driver, error) {
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
	id := newSessionID()
	if out == "" {
		out = "predictions-" + id + ".csv"
	}
	cfg := n.coordinatorConfig(id, ready, st)
	cfg.Analyst = n.cfg.ID
	cfg.Job = &session.PredictJob{Info: info, Model: em, Columns: cols, Rows: table.Rows, Dataset: req.GetDataset(), Output: out, Keys: st.keys()}
	return n.startCoordinator(id, ready, n.cfg.ID, n.cfg.Timeouts.Session, func() (session.Stepper, session.Ready) {
		return session.NewCoordinator(cfg)
	}), nil
}

// CheckModel validates a model handed to this party for storage
// (session.ModelHost).
func (h host) CheckModel(info *synodv1.ModelInfo, blob []byte) error {
	st := h.n.keyState()
	if st == nil {
		return fmt.Errorf("%s has no setup keys", h.n.cfg.ID)
	}
	if m, ok := h.n.cons.Member(info.GetOwner()); !ok || m.Role != "analyst" {
		return fmt.Errorf("model owner %q is not an analyst of the consortium", info.GetOwner())
	}
	_, err := checkUpload(st, info.GetHeader(), blob)
	return err
}

// ModelInfo returns a stored model's description (session.ModelHost).
func (h host) ModelInfo(name string) (*synodv1.ModelInfo, error) { return h.n.loadModelInfo(name) }

// partyExtension is what this node's party machines handle beyond
// queries: model uploads, predictions, encrypted training.
func (n *Node) partyExtensions() []session.PartyExtension {
	return []session.PartyExtension{&session.ModelParty{Host: host{n}}, &session.TrainParty{Host: host{n}}}
}
