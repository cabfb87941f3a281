package protocols

import (
	"bytes"
	"fmt"
	"testing"
)

func TestBeaconSeed(t *testing.T) {
	for _, tc := range dkgCases {
		t.Run(fmt.Sprintf("N%d_t%d", tc.n, tc.t), func(t *testing.T) {
			res := cachedDKG(t, tc.n, tc.t)
			ids := dkgIDs(tc.n)
			gk := res[ids[0]].GroupKey
			seedFor := func(session string, sub []PartyID) []byte {
				msg := BeaconMessage(session)
				c := newCollector(t, res, tc.n, tc.t, msg)
				for _, id := range sub {
					sig, err := SignApproval(res[id], msg)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := c.Add(id, sig); err != nil {
						t.Fatal(err)
					}
				}
				seed, err := BeaconSeed(gk, msg, c.Certificate())
				if err != nil {
					t.Fatal(err)
				}
				if len(seed) != 32 {
					t.Fatalf("seed has %d bytes", len(seed))
				}
				return seed
			}
			var seed0 []byte
			for _, sub := range dkgSubsets(ids, tc.t) {
				s := seedFor("setup-1", sub)
				if seed0 == nil {
					seed0 = s
				} else if !bytes.Equal(s, seed0) {
					t.Fatalf("subset %v gives another seed", sub)
				}
			}
			if bytes.Equal(seedFor("setup-2", ids[:tc.t]), seed0) {
				t.Fatal("two sessions give the same seed")
			}
		})
	}
}

func TestBeaconSeedRejects(t *testing.T) {
	res := cachedDKG(t, 3, 2)
	ids := dkgIDs(3)
	gk := res[ids[0]].GroupKey
	msg := BeaconMessage("setup-1")
	c := newCollector(t, res, 3, 2, msg)
	for _, id := range ids[:2] {
		sig, err := SignApproval(res[id], msg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Add(id, sig); err != nil {
			t.Fatal(err)
		}
	}
	cert := c.Certificate()
	if _, err := BeaconSeed(gk, BeaconMessage("setup-2"), cert); err == nil {
		t.Fatal("certificate accepted for another session")
	}
	// A single party's partial (without index) is not the group signature.
	sig, _ := SignApproval(res[ids[0]], msg)
	if _, err := BeaconSeed(gk, msg, sig[2:]); err == nil {
		t.Fatal("one party's signature accepted as beacon")
	}
	for name, bad := range map[string][]byte{
		"nil":     nil,
		"short":   cert[:63],
		"long":    append(bytes.Clone(cert), 0),
		"flipped": func() []byte { b := bytes.Clone(cert); b[40] ^= 1; return b }(),
		"zero":    make([]byte, g1PointSize),
	} {
		if _, err := BeaconSeed(gk, msg, bad); err == nil {
			t.Errorf("%s certificate accepted", name)
		}
	}
	if _, err := BeaconSeed(nil, msg, cert); err == nil {
		t.Fatal("nil group key accepted")
	}
	if _, err := BeaconSeed(bnSuite.G1().Point().Base(), msg, cert); err == nil {
		t.Fatal("G1 point accepted as group key")
	}
}
