package session

import (
	"errors"
	"slices"

	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/protocols"
)

// Keys is what a node holds from the consortium setup.
type Keys struct {
	Params engine.Parameters
	// Setup holds the collective public keys and, at a party, its own
	// secret shares (the coordinator's own party shares the same value).
	Setup *protocols.SetupResult
	// DKG is the party's share of the consortium threshold-BLS key and the
	// public polynomial.
	DKG *protocols.DKGResult
	// SetupSession is the id of the setup session the keys come from.
	SetupSession string
}

func (k *Keys) check() error {
	switch {
	case k == nil || k.Setup == nil || k.DKG == nil:
		return errors.New("the consortium is not set up; run mpcctl setup")
	case k.Params.N() == 0:
		return errors.New("setup keys without parameters")
	}
	return nil
}

// members returns the sorted consortium parties of the setup.
func (k *Keys) members() []PartyID {
	return slices.Clone(k.Setup.Parties)
}

// sortedIDs returns a sorted copy of ids.
func sortedIDs(ids []PartyID) []PartyID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func without(ids []PartyID, p PartyID) []PartyID {
	return slices.DeleteFunc(slices.Clone(ids), func(q PartyID) bool { return q == p })
}

func joinIDs(ids []PartyID) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ", "
		}
		s += string(id)
	}
	return s
}
