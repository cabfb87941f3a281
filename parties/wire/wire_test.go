package wire

import (
	"bytes"
	"strings"
	"testing"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/identity"
	"github.com/synod-mpc/synod/protocols"
	"google.golang.org/protobuf/proto"
)

func TestSealVerify(t *testing.T) {
	alice, err := identity.Generate("party-1")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := identity.Generate("party-2")
	if err != nil {
		t.Fatal(err)
	}
	env, err := Seal(alice, protocols.Message{Session: "s", Kind: "setup.ckg.share", From: "party-1", Payload: []byte("share")}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(env, alice.Public); err != nil {
		t.Fatalf("valid envelope refused: %v", err)
	}
	if err := Verify(env, bob.Public); err == nil {
		t.Fatal("envelope verified under another party's key")
	}
	// A relay that alters any field is caught.
	for name, alter := range map[string]func(e *synodv1.Envelope){
		"payload": func(e *synodv1.Envelope) { e.Payload = []byte("shard") },
		"kind":    func(e *synodv1.Envelope) { e.Kind = "setup.rkg.r1" },
		"to":      func(e *synodv1.Envelope) { e.To = "party-3" },
		"seq":     func(e *synodv1.Envelope) { e.Seq = 8 },
		"session": func(e *synodv1.Envelope) { e.Session = "t" },
	} {
		b, _ := proto.Marshal(env)
		e, _ := DecodeEnvelope(b)
		alter(e)
		if err := Verify(e, alice.Public); err == nil || !strings.Contains(err.Error(), "bad signature") {
			t.Errorf("altered %s: got %v", name, err)
		}
	}
	if _, err := Seal(alice, protocols.Message{Session: "s", Kind: "k", From: "party-2"}, 1); err == nil {
		t.Fatal("sealed a message in another party's name")
	}
}

func TestChunksRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 17} {
		data := bytes.Repeat([]byte{0xab}, size)
		var a Assembler
		if err := SendChunks(a.Add, data); err != nil {
			t.Fatal(err)
		}
		got, err := a.Bytes()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}

func TestAssemblerRefusesLies(t *testing.T) {
	var a Assembler
	if err := a.Add(&synodv1.Chunk{TotalSize: MaxMessageSize + 1}); err == nil {
		t.Fatal("oversized message accepted")
	}
	var b Assembler
	b.Add(&synodv1.Chunk{TotalSize: 2, Data: []byte{1}})
	if _, err := b.Bytes(); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated message: %v", err)
	}
	if err := b.Add(&synodv1.Chunk{Data: []byte{2, 3}}); err == nil {
		t.Fatal("chunks beyond the declared size accepted")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	id, _ := identity.Generate("party-1")
	env, _ := Seal(id, protocols.Message{Session: "s", Kind: "k", From: "party-1", Payload: []byte{1, 2, 3}}, 1)
	b, _ := proto.Marshal(env)
	f.Add(b)
	f.Add([]byte{})
	f.Add(append(bytes.Clone(b), 0x50, 0x01)) // unknown field 10
	f.Add([]byte{0x28, 0x0a, 0x0a, 0x01})     // seq as bytes
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err == nil {
			_ = Verify(env, id.Public)
			// Whatever the hand-written decoder accepts, protobuf reads
			// the same way.
			want := &synodv1.Envelope{}
			if perr := proto.Unmarshal(b, want); perr != nil {
				t.Fatalf("accepted what protobuf refuses (%v)", perr)
			}
			want.ProtoReflect().SetUnknown(nil)
			if !proto.Equal(env, want) {
				t.Fatalf("decoded %v, protobuf reads %v", env, want)
			}
		}
	})
}

func TestEnvelopePartsRoundTrip(t *testing.T) {
	id, err := identity.Generate("party-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, 200, ChunkSize, 3*ChunkSize + 5} {
		env, err := Seal(id, protocols.Message{Session: "s", Kind: "k", From: "party-1", To: "party-2", Payload: bytes.Repeat([]byte{7}, size)}, 9)
		if err != nil {
			t.Fatal(err)
		}
		var a Assembler
		if err := SendParts(a.Add, EnvelopeParts(env)...); err != nil {
			t.Fatal(err)
		}
		b, err := a.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		viaProto := &synodv1.Envelope{}
		if err := proto.Unmarshal(b, viaProto); err != nil || !proto.Equal(viaProto, env) {
			t.Fatalf("payload %d: protobuf reads the parts as %v (%v)", size, viaProto, err)
		}
		got, err := DecodeEnvelope(b)
		if err != nil || !proto.Equal(got, env) {
			t.Fatalf("payload %d: decoded %v (%v)", size, got, err)
		}
		if err := Verify(got, id.Public); err != nil {
			t.Fatal(err)
		}
		marshalled, _ := proto.Marshal(env)
		if again, err := DecodeEnvelope(marshalled); err != nil || !proto.Equal(again, env) {
			t.Fatalf("payload %d: protobuf's encoding decoded as %v (%v)", size, again, err)
		}
	}
}

func TestDigestCoversEveryFieldAndMatchesVerify(t *testing.T) {
	alice, err := identity.Generate("party-1")
	if err != nil {
		t.Fatal(err)
	}
	env, err := Seal(alice, protocols.Message{Session: "s", Kind: "k", From: "party-1", To: "party-2", Payload: []byte("payload")}, 7)
	if err != nil {
		t.Fatal(err)
	}
	d, err := VerifyDigest(env, alice.Public)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d, Digest(env)) {
		t.Fatal("VerifyDigest and Digest disagree")
	}
	for name, alter := range map[string]func(e *synodv1.Envelope){
		"session":   func(e *synodv1.Envelope) { e.Session = "t" },
		"kind":      func(e *synodv1.Envelope) { e.Kind = "j" },
		"from":      func(e *synodv1.Envelope) { e.From = "carol" },
		"to":        func(e *synodv1.Envelope) { e.To = "" },
		"seq":       func(e *synodv1.Envelope) { e.Seq++ },
		"payload":   func(e *synodv1.Envelope) { e.Payload = []byte("payloae") },
		"signature": func(e *synodv1.Envelope) { e.Signature = append([]byte{}, e.Signature...); e.Signature[0] ^= 1 },
	} {
		e := proto.Clone(env).(*synodv1.Envelope)
		alter(e)
		if bytes.Equal(Digest(e), d) {
			t.Errorf("altering the %s leaves the digest unchanged", name)
		}
	}
}

// A sender's declared size reserves nothing: memory follows the bytes that
// arrived (a peer declaring 256 MiB and sending one byte holds at most one
// chunk's worth), and a complete message holds exactly its size.
func TestAssemblerAllocatesAsBytesArrive(t *testing.T) {
	var a Assembler
	if err := a.Add(&synodv1.Chunk{TotalSize: MaxMessageSize, Data: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if a.Held() > ChunkSize {
		t.Fatalf("one byte of a declared %d holds %d bytes", MaxMessageSize, a.Held())
	}
	data := bytes.Repeat([]byte{7}, 5*ChunkSize+3)
	var b Assembler
	if err := SendChunks(b.Add, data); err != nil {
		t.Fatal(err)
	}
	if b.Held() != len(data) {
		t.Fatalf("complete message of %d bytes holds %d", len(data), b.Held())
	}
}

// One sender's streams together hold at most its budget; another sender is
// not affected; released reservations can be used again.
func TestBudgetBoundsOneSender(t *testing.T) {
	b := NewBudget(3 * ChunkSize)
	chunk := bytes.Repeat([]byte{1}, ChunkSize)
	var open []*Assembler
	var err error
	for i := 0; i < 5 && err == nil; i++ {
		a := &Assembler{Budget: b, Owner: "party-2"}
		open = append(open, a)
		err = a.Add(&synodv1.Chunk{TotalSize: MaxMessageSize, Data: chunk})
	}
	if err == nil || !strings.Contains(err.Error(), "party-2") || len(open) != 4 {
		t.Fatalf("after %d streams: %v", len(open), err)
	}
	if got := b.Held("party-2"); got > 3*ChunkSize {
		t.Fatalf("party-2 holds %d bytes, budget %d", got, 3*ChunkSize)
	}
	other := &Assembler{Budget: b, Owner: "party-3"}
	if err := other.Add(&synodv1.Chunk{TotalSize: 10, Data: []byte{1}}); err != nil {
		t.Fatalf("another sender refused: %v", err)
	}
	for _, a := range open {
		a.Release()
	}
	if got := b.Held("party-2"); got != 0 {
		t.Fatalf("after release party-2 holds %d", got)
	}
	again := &Assembler{Budget: b, Owner: "party-2"}
	if err := again.Add(&synodv1.Chunk{TotalSize: MaxMessageSize, Data: chunk}); err != nil {
		t.Fatalf("after release: %v", err)
	}
}
