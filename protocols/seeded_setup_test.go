package protocols

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"testing"

	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/group/edwards25519"

	"github.com/synod-mpc/synod/engine"
)

// TestSetupWithPresetSeed: with a CRS seed given (the threshold-BLS beacon),
// the parties skip commit-reveal, agree on the keys, and refuse a stray
// commit.
func TestSetupWithPresetSeed(t *testing.T) {
	params, err := engine.ParametersByName("ckks-n13")
	if err != nil {
		t.Fatal(err)
	}
	parties := []PartyID{"party-1", "party-2", "party-3"}
	suite := edwards25519.NewBlakeSHA256Ed25519()
	priv, pub := map[PartyID]kyber.Scalar{}, map[PartyID]kyber.Point{}
	for _, id := range parties {
		priv[id] = suite.Scalar().Pick(suite.RandomStream())
		pub[id] = suite.Point().Mul(priv[id], nil)
	}
	seed := bytes.Repeat([]byte{7}, 32)
	setups := map[PartyID]*Setup{}
	var queue []Message
	for _, id := range parties {
		s, out, err := NewSetup(SetupConfig{Params: params, Session: "seeded", Self: id, Parties: parties, Threshold: 2,
			Identity: priv[id], PeerKeys: pub, Rand: rand.Reader, CRSSeed: seed})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out {
			if m.Kind == KindCRSCommit || m.Kind == KindCRSReveal {
				t.Fatalf("%s sent %s although the seed was given", id, m.Kind)
			}
		}
		setups[id] = s
		queue = append(queue, out...)
	}
	_, err = setups["party-2"].Step(Message{Session: "seeded", Kind: KindCRSCommit, From: "party-1", Payload: make([]byte, 32)})
	if err == nil || !strings.Contains(err.Error(), "no commit-reveal") {
		t.Fatalf("stray commit: %v", err)
	}
	if err := relaySetup(setups, queue, nil); err != nil {
		t.Fatal(err)
	}
	var digest []byte
	for id, s := range setups {
		if !s.Done() {
			t.Fatalf("%s stalled at %s", id, s.Stage())
		}
		r := s.Result()
		if !bytes.Equal(r.CRSSeed, seed) {
			t.Fatalf("%s used seed %x", id, r.CRSSeed)
		}
		if digest == nil {
			digest = r.Digest
		} else if !bytes.Equal(digest, r.Digest) {
			t.Fatalf("%s derived other keys", id)
		}
	}
	if _, _, err := NewSetup(SetupConfig{Params: params, Session: "s", Self: "party-1", Parties: parties, Threshold: 2,
		Identity: priv["party-1"], PeerKeys: pub, Rand: rand.Reader, CRSSeed: []byte{1}}); err == nil {
		t.Fatal("a 1-byte seed was accepted")
	}
}

// The setup digest streams the keys through a small buffer; it must equal
// the hash of their materialised encodings.
func TestSetupDigestStreamsTheEncodedKeys(t *testing.T) {
	p, err := engine.ParametersByName("ckks-n13")
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunSetupInProcess(p, partyIDs(3), 2, p.GaloisElements()[:2])
	if err != nil {
		t.Fatal(err)
	}
	r := res["party-1"]
	rp := *p.GetRLWEParameters()
	h := sha256.New()
	h.Write([]byte("synod/setup/v1"))
	h.Write(appendStr(nil, r.ParamsName))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(r.Parties))))
	for _, id := range r.Parties {
		h.Write(appendStr(nil, string(id)))
	}
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(r.Threshold)))
	h.Write(appendBlob(nil, r.CRSSeed))
	h.Write(appendBlob(nil, publicKeyShape(r.PublicKey).encode(rp, nil)))
	h.Write(appendBlob(nil, gadgetShape(&r.RelinearizationKey.GadgetCiphertext).encode(rp, nil)))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(r.GaloisKeys))))
	for _, gk := range r.GaloisKeys {
		h.Write(appendBlob(nil, encodeGaloisKey(rp, gk)))
	}
	if want := h.Sum(nil); !bytes.Equal(r.Digest, want) {
		t.Fatalf("digest %x, want %x", r.Digest, want)
	}
}
