package protocols

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"reflect"
	"testing"

	"go.dedis.ch/kyber/v3"
	vss "go.dedis.ch/kyber/v3/share/vss/pedersen"
	"go.dedis.ch/kyber/v3/sign/schnorr"
	"go.dedis.ch/protobuf"
	"golang.org/x/crypto/hkdf"
)

// corruptDeal re-encrypts the deal that dealer addressed to `to` with a
// wrong share, as a dishonest dealer would: the deal decrypts and is signed,
// but the share does not match the commitments. It mirrors kyber's VSS deal
// encryption (HKDF-SHA256 of the DH point, AES-GCM, protobuf).
func corruptDeal(t *testing.T, dkgs map[PartyID]*DKG, dealer, to PartyID, payload []byte) []byte {
	t.Helper()
	dd, err := DecodeDKGDeal(payload)
	if err != nil {
		t.Fatal(err)
	}
	rcv, snd := dkgs[to], dkgs[dealer]
	suite := rcv.suite
	h := sha256.New()
	h.Write([]byte("vss-dealer"))
	_, _ = rcv.pubs[dealer].MarshalTo(h)
	h.Write([]byte("vss-verifiers"))
	for _, id := range rcv.parties {
		_, _ = rcv.pubs[id].MarshalTo(h)
	}
	hctx := h.Sum(nil)
	dh := suite.Point()
	if err := dh.UnmarshalBinary(dd.Deal.DHKey); err != nil {
		t.Fatal(err)
	}
	pre, _ := suite.Point().Mul(rcv.long, dh).MarshalBinary()
	key := make([]byte, 32)
	if _, err := hkdf.New(sha256.New, pre, nil, hctx).Read(key); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := gcm.Open(nil, dd.Deal.Nonce, dd.Deal.Cipher, hctx)
	if err != nil {
		t.Fatal(err)
	}
	var point kyber.Point
	var scalar kyber.Scalar
	cons := protobuf.Constructors{
		reflect.TypeOf(&point).Elem():  func() interface{} { return suite.Point() },
		reflect.TypeOf(&scalar).Elem(): func() interface{} { return suite.Scalar() },
	}
	deal := &vss.Deal{}
	if err := protobuf.DecodeWithConstructors(plain, deal, cons); err != nil {
		t.Fatal(err)
	}
	deal.SecShare.V = suite.Scalar().Add(deal.SecShare.V, suite.Scalar().One())
	plain, err = protobuf.Encode(deal)
	if err != nil {
		t.Fatal(err)
	}
	dd.Deal.Cipher = gcm.Seal(nil, dd.Deal.Nonce, plain, hctx)
	buf, _ := dd.MarshalBinary()
	if dd.Signature, err = schnorr.Sign(snd.suite, snd.long, buf); err != nil {
		t.Fatal(err)
	}
	out, err := EncodeDKGDeal(dd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A dealer that sends a wrong share draws a complaint; its justification
// reveals the right share, every party accepts it, and the complainer uses
// the revealed share (kyber itself would keep the wrong one).
func TestDKGComplaintJustified(t *testing.T) {
	for _, order := range []relayOrder{fifoOrder, lifoOrder, randomOrder(7)} {
		dkgs, queue := newDKGs(t, "complaint", 4, 3, "complaint")
		var complaints, justifications int
		intercept := func(to PartyID, m *Message) bool {
			switch {
			case m.Kind == KindDKGDeal && m.From == "party-2" && to == "party-1":
				m.Payload = corruptDeal(t, dkgs, "party-2", "party-1", m.Payload)
			case m.Kind == KindDKGResponse && m.From == "party-1":
				r, err := DecodeDKGResponse(m.Payload)
				if err != nil {
					t.Fatal(err)
				}
				if r.Response.Status == vss.StatusComplaint {
					complaints++
				}
			case m.Kind == KindDKGJustification:
				justifications++
			}
			return true
		}
		if err := relayDKG(dkgs, queue, order, intercept); err != nil {
			t.Fatal(err)
		}
		if complaints == 0 || justifications == 0 {
			t.Fatalf("complaints %d, justifications %d", complaints, justifications)
		}
		res := map[PartyID]*DKGResult{}
		for id, d := range dkgs {
			if !d.Done() {
				t.Fatalf("%s not done", id)
			}
			res[id] = d.Result()
		}
		if len(dkgs["party-1"].justified) != 1 {
			t.Fatal("complainer did not take the revealed share")
		}
		msg := ApprovalMessage("q", "a", nil)
		c := newCollector(t, res, 4, 3, msg)
		for _, id := range []PartyID{"party-1", "party-2", "party-3"} {
			sig, err := SignApproval(res[id], msg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Add(id, sig); err != nil {
				t.Fatal(err)
			}
		}
		if err := VerifyCertificate(res["party-4"].GroupKey, msg, c.Certificate()); err != nil {
			t.Fatal(err)
		}
	}
}

// A justification that does not hold aborts the DKG naming the dealer.
func TestDKGBadJustification(t *testing.T) {
	dkgs, queue := newDKGs(t, "complaint", 4, 3, "complaint")
	tampered := false
	intercept := func(to PartyID, m *Message) bool {
		switch {
		case m.Kind == KindDKGDeal && m.From == "party-2" && to == "party-1":
			m.Payload = corruptDeal(t, dkgs, "party-2", "party-1", m.Payload)
		case m.Kind == KindDKGJustification && to == "party-3":
			j, err := DecodeDKGJustification(m.Payload)
			if err != nil {
				t.Fatal(err)
			}
			v := j.Justification.Deal.SecShare.V
			v.Add(v, v)
			if m.Payload, err = EncodeDKGJustification(j); err != nil {
				t.Fatal(err)
			}
			tampered = true
		}
		return true
	}
	err := relayDKG(dkgs, queue, fifoOrder, intercept)
	if !tampered {
		t.Fatal("no justification sent")
	}
	wantProtocolError(t, err, "party-2", KindDKGJustification)
}
