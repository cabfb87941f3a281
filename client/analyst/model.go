package analyst

import (
	"context"
	"fmt"
	"io"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/parties/wire"
)

// CollectiveKey is the consortium's collective public key, as the node
// sent it: a model's weights are encrypted under it, so that no party alone
// can decrypt them.
type CollectiveKey struct {
	Meta   *synodv1.CollectiveKeyMetadata
	Params engine.Parameters
	Key    *engine.PublicKey
}

// CollectiveKey fetches the collective public key from the node and decodes
// it (strictly: it is checked against its parameter set).
func (c *Client) CollectiveKey(ctx context.Context) (*CollectiveKey, error) {
	stream, err := c.rpc.CollectiveKey(ctx, &synodv1.CollectiveKeyRequest{})
	if err != nil {
		return nil, err
	}
	var meta *synodv1.CollectiveKeyMetadata
	var asm wire.Assembler
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch p := msg.GetPart().(type) {
		case *synodv1.CollectiveKeyResponse_Metadata:
			meta = p.Metadata
		case *synodv1.CollectiveKeyResponse_Key:
			if err := asm.Add(p.Key); err != nil {
				return nil, fmt.Errorf("collective key: %w", err)
			}
		}
	}
	b, err := asm.Bytes()
	if err != nil || meta == nil {
		return nil, fmt.Errorf("collective key: incomplete answer (%v)", err)
	}
	params, err := engine.ParametersByName(meta.GetParameters())
	if err != nil {
		return nil, err
	}
	pk, err := engine.DecodePublicKey(params, b)
	if err != nil {
		return nil, fmt.Errorf("collective key: %w", err)
	}
	return &CollectiveKey{Meta: meta, Params: params, Key: pk}, nil
}

// EncryptedModel is a model's weights encrypted under the collective key,
// ready to upload.
type EncryptedModel struct {
	Blob         []byte // the encrypted model (model.EncryptedModel's encoding)
	Architecture []byte // its public architecture, JSON
	Ciphertexts  int
	Parameters   string // the parameter set's name
	KeyDigest    []byte // of the collective key it is encrypted under
}

// EncryptModel encrypts m's weights under the collective key, after
// checking that the parties can evaluate it (model.NewPredictionPlan: it
// must fit the parameters with one level to spare).
func EncryptModel(key *CollectiveKey, m *model.Model) (*EncryptedModel, error) {
	if _, err := model.NewPredictionPlan(key.Params, model.ArchitectureOf(m)); err != nil {
		return nil, err
	}
	em, err := model.EncryptModelForPrediction(key.Params, key.Key, m)
	if err != nil {
		return nil, err
	}
	blob, err := em.MarshalBinary()
	if err != nil {
		return nil, err
	}
	arch, err := em.Arch.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return &EncryptedModel{Blob: blob, Architecture: arch, Ciphertexts: em.Ciphertexts(), Parameters: key.Params.Name,
		KeyDigest: key.Meta.GetKeyDigest()}, nil
}

// UploadModel stores an encrypted model at every reachable party under
// name; parties lists the parties allowed to predict with it (none: every
// party). The node records the upload on the chain.
func (c *Client) UploadModel(ctx context.Context, name string, parties []string, em *EncryptedModel) (*synodv1.UploadModelResponse, error) {
	stream, err := c.rpc.UploadModel(ctx)
	if err != nil {
		return nil, err
	}
	header := &synodv1.ModelHeader{Name: name, Architecture: em.Architecture, Parameters: em.Parameters, KeyDigest: em.KeyDigest, Parties: parties}
	if err := stream.Send(&synodv1.UploadModelRequest{Part: &synodv1.UploadModelRequest_Header{Header: header}}); err != nil {
		return nil, err
	}
	// io.EOF: the node closed the stream; CloseAndRecv says why.
	if err := wire.SendChunks(func(ch *synodv1.Chunk) error {
		return stream.Send(&synodv1.UploadModelRequest{Part: &synodv1.UploadModelRequest_Model{Model: ch}})
	}, em.Blob); err != nil && err != io.EOF {
		return nil, err
	}
	return stream.CloseAndRecv()
}
