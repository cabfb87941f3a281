package protocols

// TEMPORARY stub until the refresh protocol lands (replaced on merge).

import (
	"errors"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
)

type Transform uint8

const (
	TransformNone Transform = iota
	TransformSlotMean
)

const KindRefreshShare Kind = "refresh.share"

type RefreshRequest struct {
	Session     string
	Round       uint32
	Group       []PartyID
	Transform   Transform
	Ciphertexts []*rlwe.Ciphertext
}

func (r RefreshRequest) Marshal() ([]byte, error) { return nil, errors.New("refresh: not implemented") }

func UnmarshalRefreshRequest(p engine.Parameters, b []byte) (RefreshRequest, error) {
	return RefreshRequest{}, errors.New("refresh: not implemented")
}

func RefreshShare(p engine.Parameters, self PartyID, members []PartyID, threshold int, share mhe.ShamirSecretShare, req RefreshRequest, to PartyID) (Message, error) {
	return Message{}, errors.New("refresh: not implemented")
}

type RefreshAggregator struct{}

func NewRefreshAggregator(p engine.Parameters, req RefreshRequest) (*RefreshAggregator, error) {
	return nil, errors.New("refresh: not implemented")
}
func (a *RefreshAggregator) Step(m Message) (bool, error)     { return false, errors.New("refresh: not implemented") }
func (a *RefreshAggregator) Missing() []PartyID               { return nil }
func (a *RefreshAggregator) Result() []*rlwe.Ciphertext       { return nil }
