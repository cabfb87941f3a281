package protocols

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/share"
	pedersen "go.dedis.ch/kyber/v3/share/dkg/pedersen"
	vss "go.dedis.ch/kyber/v3/share/vss/pedersen"
)

var dkgCases = []struct{ n, t int }{{3, 2}, {4, 3}, {5, 3}}

func dkgIDs(n int) []PartyID {
	ids := make([]PartyID, n)
	for i := range ids {
		ids[i] = PartyID(fmt.Sprintf("party-%d", i+1))
	}
	return ids
}

// dkgSubsets returns every k-subset of ids.
func dkgSubsets(ids []PartyID, k int) [][]PartyID {
	if k == 0 {
		return [][]PartyID{{}}
	}
	if len(ids) < k {
		return nil
	}
	var out [][]PartyID
	for _, rest := range dkgSubsets(ids[1:], k-1) {
		out = append(out, append([]PartyID{ids[0]}, rest...))
	}
	return append(out, dkgSubsets(ids[1:], k)...)
}

// detRand is a deterministic randomness source for reproducible tests.
func detRand(seed string, id PartyID) io.Reader {
	var s [32]byte
	copy(s[:], seed+"/"+string(id))
	return rand.NewChaCha8(s)
}

func newDKGs(t testing.TB, session string, n, thr int, seed string) (map[PartyID]*DKG, []Message) {
	t.Helper()
	ids := dkgIDs(n)
	dkgs := map[PartyID]*DKG{}
	var queue []Message
	for _, id := range ids {
		d, out, err := NewDKG(DKGConfig{Session: session, Self: id, Parties: ids, Threshold: thr, Rand: detRand(seed, id)})
		if err != nil {
			t.Fatal(err)
		}
		dkgs[id] = d
		queue = append(queue, out...)
	}
	return dkgs, queue
}

// relayOrder picks which queued message the relay delivers next.
type relayOrder func(queueLen int) int

func fifoOrder(int) int { return 0 }

func lifoOrder(n int) int { return n - 1 }

func randomOrder(seed uint64) relayOrder {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(n int) int { return r.IntN(n) }
}

// relayDKG is the coordinator's star, in memory (as relaySetup in
// inprocess.go): it delivers queued messages, in the order chosen by order,
// to To or to every participant but From, until the queue drains.
// intercept, if set, may alter or drop (return false) each delivery.
func relayDKG(dkgs map[PartyID]*DKG, queue []Message, order relayOrder, intercept func(to PartyID, m *Message) bool) error {
	for len(queue) > 0 {
		i := order(len(queue))
		m := queue[i]
		queue = append(queue[:i], queue[i+1:]...)
		var recipients []PartyID
		if m.To != "" {
			recipients = []PartyID{m.To}
		} else {
			for _, id := range dkgs[m.From].parties {
				if id != m.From {
					recipients = append(recipients, id)
				}
			}
		}
		for _, to := range recipients {
			d, ok := dkgs[to]
			if !ok {
				return fmt.Errorf("message %s to unknown party %s", m, to)
			}
			dm := m
			dm.Payload = bytes.Clone(m.Payload)
			if intercept != nil && !intercept(to, &dm) {
				continue
			}
			out, err := d.Step(dm)
			if err != nil {
				return fmt.Errorf("%s: %w", to, err)
			}
			queue = append(queue, out...)
		}
	}
	return nil
}

func runDKG(t testing.TB, n, thr int, order relayOrder) map[PartyID]*DKGResult {
	t.Helper()
	dkgs, queue := newDKGs(t, fmt.Sprintf("dkg-test-%d-%d", n, thr), n, thr, fmt.Sprintf("seed-%d-%d", n, thr))
	if err := relayDKG(dkgs, queue, order, nil); err != nil {
		t.Fatal(err)
	}
	res := map[PartyID]*DKGResult{}
	for id, d := range dkgs {
		if !d.Done() {
			t.Fatalf("DKG of %s did not complete (stage %s)", id, d.stage)
		}
		res[id] = d.Result()
	}
	return res
}

var (
	dkgCacheMu sync.Mutex
	dkgCache   = map[[2]int]map[PartyID]*DKGResult{}
)

func cachedDKG(t testing.TB, n, thr int) map[PartyID]*DKGResult {
	t.Helper()
	dkgCacheMu.Lock()
	defer dkgCacheMu.Unlock()
	if r, ok := dkgCache[[2]int{n, thr}]; ok {
		return r
	}
	r := runDKG(t, n, thr, randomOrder(uint64(n*10+thr)))
	dkgCache[[2]int{n, thr}] = r
	return r
}

func TestDKGGroupKey(t *testing.T) {
	for _, c := range dkgCases {
		t.Run(fmt.Sprintf("N%d_t%d", c.n, c.t), func(t *testing.T) {
			res := cachedDKG(t, c.n, c.t)
			ids := dkgIDs(c.n)
			ref := res[ids[0]]
			_, refCommits := ref.Public.Info()
			if len(refCommits) != c.t {
				t.Fatalf("public polynomial has %d commitments, want %d", len(refCommits), c.t)
			}
			shares := make([]*share.PriShare, 0, c.n)
			for i, id := range ids {
				r := res[id]
				if !r.GroupKey.Equal(ref.GroupKey) {
					t.Fatalf("%s has another group key", id)
				}
				_, commits := r.Public.Info()
				for k := range commits {
					if !commits[k].Equal(refCommits[k]) {
						t.Fatalf("%s has another public polynomial", id)
					}
				}
				pt, err := ShamirPoint(ids, id)
				if err != nil {
					t.Fatal(err)
				}
				if r.Index != i || r.Share.I != i || uint64(r.Index+1) != pt {
					t.Fatalf("%s has index %d, want %d (ShamirPoint %d)", id, r.Index, i, pt)
				}
				if !ref.Public.Check(r.Share) {
					t.Fatalf("share of %s does not verify", id)
				}
				shares = append(shares, r.Share)
			}
			// Any t shares reconstruct the secret behind the group key; t-1 do not.
			g := g2()
			for _, sub := range [][]*share.PriShare{shares[:c.t], shares[c.n-c.t:]} {
				sec, err := share.RecoverSecret(g, sub, c.t, c.n)
				if err != nil {
					t.Fatal(err)
				}
				if !g.Point().Mul(sec, nil).Equal(ref.GroupKey) {
					t.Fatal("t shares do not reconstruct the group secret")
				}
			}
			if sec, err := share.RecoverSecret(g, shares[:c.t-1], c.t-1, c.n); err == nil && g.Point().Mul(sec, nil).Equal(ref.GroupKey) {
				t.Fatal("t-1 shares reconstruct the group secret")
			}
		})
	}
}

// Messages delivered newest first (deals before the last public keys,
// responses before their deals) and in random orders must give the same
// outcome as in order.
func TestDKGOutOfOrder(t *testing.T) {
	orders := map[string]relayOrder{"fifo": fifoOrder, "lifo": lifoOrder, "random1": randomOrder(1), "random2": randomOrder(2)}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			res := runDKG(t, 4, 3, order)
			var key []byte
			for _, r := range res {
				b, err := MarshalGroupKey(r.GroupKey)
				if err != nil {
					t.Fatal(err)
				}
				if key != nil && !bytes.Equal(key, b) {
					t.Fatal("parties disagree on the group key")
				}
				key = b
			}
		})
	}
}

// The buffering must handle a deal that arrives before all public keys.
func TestDKGDealBeforePubs(t *testing.T) {
	dkgs, queue := newDKGs(t, "early", 3, 2, "early")
	// party-1 and party-2 exchange keys, party-3 hears only party-2's key
	// and party-1's deal before party-1's key.
	var held []Message
	intercept := func(to PartyID, m *Message) bool {
		if to == "party-3" && m.From == "party-1" && m.Kind == KindDKGPub {
			held = append(held, *m)
			return false
		}
		return true
	}
	if err := relayDKG(dkgs, queue, fifoOrder, intercept); err != nil {
		t.Fatal(err)
	}
	if dkgs["party-3"].Done() || len(held) != 1 {
		t.Fatal("party-3 completed without party-1's key")
	}
	if len(dkgs["party-3"].deals) == 0 {
		t.Fatal("expected a buffered deal at party-3")
	}
	out, err := dkgs["party-3"].Step(held[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := relayDKG(dkgs, out, fifoOrder, nil); err != nil {
		t.Fatal(err)
	}
	for id, d := range dkgs {
		if !d.Done() {
			t.Fatalf("%s not done", id)
		}
	}
}

func wantProtocolError(t *testing.T, err error, party PartyID, kind Kind) {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("want a ProtocolError naming %s, got %v", party, err)
	}
	if pe.Party != party || pe.Kind != kind {
		t.Fatalf("error names %s (%s), want %s (%s): %v", pe.Party, pe.Kind, party, kind, err)
	}
}

func TestDKGTamperedPayloads(t *testing.T) {
	type tamper struct {
		kind Kind
		edit func(b []byte) []byte
	}
	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte {
			if off < 0 {
				off += len(b)
			}
			b[off] ^= 0x01
			return b
		}
	}
	cases := map[string]tamper{
		"deal-cipher":        {KindDKGDeal, flip(-200)},
		"deal-signature":     {KindDKGDeal, flip(-1)},
		"deal-dhkey":         {KindDKGDeal, flip(8)},
		"deal-truncated":     {KindDKGDeal, func(b []byte) []byte { return b[:len(b)-1] }},
		"deal-index":         {KindDKGDeal, flip(3)},
		"response-signature": {KindDKGResponse, flip(-1)},
		"response-status":    {KindDKGResponse, func(b []byte) []byte { b[4+4+32+4] ^= 1; return b }},
		"response-sid":       {KindDKGResponse, flip(10)},
		"response-trailing":  {KindDKGResponse, func(b []byte) []byte { return append(b, 0) }},
		"pub-offcurve":       {KindDKGPub, flip(5)},
		"done-digest":        {KindDKGDone, flip(0)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dkgs, queue := newDKGs(t, "tamper", 3, 2, "tamper")
			done := false
			intercept := func(to PartyID, m *Message) bool {
				if !done && m.From == "party-2" && to == "party-1" && m.Kind == c.kind {
					m.Payload = c.edit(m.Payload)
					done = true
				}
				return true
			}
			err := relayDKG(dkgs, queue, fifoOrder, intercept)
			if !done {
				t.Fatal("no message tampered")
			}
			wantProtocolError(t, err, "party-2", c.kind)
			t.Log(err)
		})
	}
}

func TestDKGRejectsBadMessages(t *testing.T) {
	ids := dkgIDs(3)
	d, out, err := NewDKG(DKGConfig{Session: "s", Self: ids[0], Parties: ids, Threshold: 2, Rand: detRand("r", ids[0])})
	if err != nil {
		t.Fatal(err)
	}
	pub := out[0].Payload
	for _, m := range []Message{
		{Session: "s", Kind: KindDKGPub, From: "mallory", Payload: pub},
		{Session: "other", Kind: KindDKGPub, From: ids[1], Payload: pub},
		{Session: "s", Kind: KindDKGPub, From: ids[1], Payload: pub},                  // same key as party-1
		{Session: "s", Kind: KindDKGPub, From: ids[1], Payload: make([]byte, 128)},    // identity
		{Session: "s", Kind: KindDKGDeal, From: ids[1], Payload: []byte{1}},           // not addressed
		{Session: "s", Kind: KindDKGDeal, From: ids[1], To: ids[0], Payload: nil},     // empty
		{Session: "s", Kind: KindDKGResponse, From: ids[1], To: ids[0], Payload: nil}, // addressed broadcast
		{Session: "s", Kind: "dkg.other", From: ids[1], Payload: nil},
	} {
		if _, err := d.Step(m); err == nil {
			t.Fatalf("%s accepted", m)
		} else {
			wantProtocolError(t, err, m.From, m.Kind)
		}
	}
	// A well-formed response about the sender's own deal is refused.
	r := &pedersen.Response{Index: 1, Response: &vss.Response{SessionID: make([]byte, 32), Index: 1, Signature: make([]byte, 160)}}
	b, err := EncodeDKGResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step(Message{Session: "s", Kind: KindDKGResponse, From: ids[1], Payload: b}); err == nil {
		t.Fatal("response about own deal accepted")
	}
	// Rejections leave the instance usable.
	dkgs, queue := newDKGs(t, "s", 3, 2, "r")
	dkgs[ids[0]] = d
	if err := relayDKG(dkgs, queue, fifoOrder, nil); err != nil {
		t.Fatal(err)
	}
	for id, d := range dkgs {
		if !d.Done() {
			t.Fatalf("%s not done", id)
		}
	}
	if _, _, err := NewDKG(DKGConfig{Session: "s", Self: ids[0], Parties: ids, Threshold: 1, Rand: detRand("r", ids[0])}); err == nil {
		t.Fatal("threshold 1 accepted")
	}
	if _, err := d.Step(Message{Session: "s", Kind: KindDKGDone, From: ids[1], Payload: make([]byte, 32)}); err == nil {
		t.Fatal("message after completion accepted")
	}
}

func TestDKGResultMarshal(t *testing.T) {
	res := cachedDKG(t, 3, 2)
	r := res["party-2"]
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := UnmarshalDKGResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Index != r.Index || !r2.Share.V.Equal(r.Share.V) || !r2.GroupKey.Equal(r.GroupKey) {
		t.Fatal("round trip changed the result")
	}
	b2, err := r2.MarshalBinary()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	fmtLen := 2 + len(dkgResultFormat)
	for name, edit := range map[string]func([]byte) []byte{
		"index":     func(b []byte) []byte { binary.BigEndian.PutUint16(b[fmtLen:], 0); return b },
		"share":     func(b []byte) []byte { b[fmtLen+2+31] ^= 1; return b },
		"commit":    func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"truncated": func(b []byte) []byte { return b[:len(b)-1] },
		"trailing":  func(b []byte) []byte { return append(b, 0) },
		"format":    func(b []byte) []byte { b[3] ^= 1; return b },
	} {
		if _, err := UnmarshalDKGResult(edit(bytes.Clone(b))); err == nil {
			t.Errorf("%s: tampered result accepted", name)
		}
	}
}

// FuzzDKGStep feeds arbitrary payloads of every DKG kind, from party-2, to
// party-1 either before or after it knows every public key. Property: no
// panic escapes, and any error is a ProtocolError naming the sender.
func FuzzDKGStep(f *testing.F) {
	ids := dkgIDs(3)
	const session = "fuzz"
	// Record a complete run to seed the corpus with valid payloads.
	dkgs, queue := newDKGs(f, session, 3, 2, "fuzz")
	var pubs []Message
	seeds := map[Kind][]byte{}
	err := relayDKG(dkgs, queue, fifoOrder, func(to PartyID, m *Message) bool {
		if to == ids[0] {
			if m.Kind == KindDKGPub {
				pubs = append(pubs, *m)
			}
			if m.From == ids[1] {
				seeds[m.Kind] = bytes.Clone(m.Payload)
			}
		}
		return true
	})
	if err != nil {
		f.Fatal(err)
	}
	g := g2()
	j := &pedersen.Justification{Index: 1, Justification: &vss.Justification{
		SessionID: make([]byte, 32), Index: 0, Signature: make([]byte, 160),
		Deal: &vss.Deal{SessionID: make([]byte, 32), T: 2, SecShare: &share.PriShare{I: 0, V: g.Scalar().SetInt64(7)},
			Commitments: []kyber.Point{g.Point().Base(), g.Point().Mul(g.Scalar().SetInt64(3), nil)}},
	}}
	if seeds[KindDKGJustification], err = EncodeDKGJustification(j); err != nil {
		f.Fatal(err)
	}
	kinds := []Kind{KindDKGPub, KindDKGDeal, KindDKGResponse, KindDKGJustification, KindDKGDone}
	for ki, k := range kinds {
		s := seeds[k]
		if s == nil {
			f.Fatalf("no seed for %s", k)
		}
		for _, stage := range []uint8{0, 1} {
			f.Add(uint8(ki), stage, s)
			f.Add(uint8(ki), stage, s[:len(s)/2])
			f.Add(uint8(ki), stage, append(bytes.Clone(s), 0))
		}
	}
	f.Add(uint8(0), uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, kind, stage uint8, payload []byte) {
		d, _, err := NewDKG(DKGConfig{Session: session, Self: ids[0], Parties: ids, Threshold: 2, Rand: detRand("fuzz", ids[0])})
		if err != nil {
			t.Fatal(err)
		}
		if stage%2 == 1 {
			for _, p := range pubs {
				if _, err := d.Step(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		k := kinds[int(kind)%len(kinds)]
		m := Message{Session: session, Kind: k, From: ids[1], Payload: payload}
		if k == KindDKGDeal {
			m.To = ids[0]
		}
		if _, err := d.Step(m); err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Party != ids[1] {
				t.Fatalf("error does not name the sender: %v", err)
			}
		}
	})
}
