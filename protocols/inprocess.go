package protocols

import (
	"crypto/rand"
	"fmt"

	"github.com/synod-mpc/synod/engine"
	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/group/edwards25519"
)

// RunSetupInProcess runs the consortium setup for every party in one
// process, relaying messages through an in-memory star exactly as the
// coordinator would (To, or every participant but From). It generates the
// parties' identity keys itself. Used by tests and as the comparison point
// between the state machines and the raw protocol cost (FloorSetup).
func RunSetupInProcess(params engine.Parameters, parties []PartyID, threshold int, galEls []uint64) (map[PartyID]*SetupResult, error) {
	suite := edwards25519.NewBlakeSHA256Ed25519()
	priv := map[PartyID]kyber.Scalar{}
	pub := map[PartyID]kyber.Point{}
	for _, id := range parties {
		priv[id] = suite.Scalar().Pick(suite.RandomStream())
		pub[id] = suite.Point().Mul(priv[id], nil)
	}
	setups := map[PartyID]*Setup{}
	var queue []Message
	for _, id := range parties {
		s, out, err := NewSetup(SetupConfig{
			Params: params, Session: "in-process-setup", Self: id, Parties: parties,
			Threshold: threshold, GaloisElements: galEls, Identity: priv[id], PeerKeys: pub, Rand: rand.Reader,
		})
		if err != nil {
			return nil, err
		}
		setups[id] = s
		queue = append(queue, out...)
	}
	if err := relaySetup(setups, queue, nil); err != nil {
		return nil, err
	}
	res := map[PartyID]*SetupResult{}
	for id, s := range setups {
		if !s.Done() {
			return nil, fmt.Errorf("setup of %s stalled at stage %s", id, s.Stage())
		}
		res[id] = s.Result()
	}
	return res, nil
}

// relaySetup delivers messages until the queue drains. intercept, if set,
// may alter or drop (return false) each delivery before it reaches its
// recipient.
func relaySetup(setups map[PartyID]*Setup, queue []Message, intercept func(to PartyID, m *Message) bool) error {
	for len(queue) > 0 {
		m := queue[0]
		queue[0] = Message{}
		queue = queue[1:]
		var recipients []PartyID
		if m.To != "" {
			recipients = []PartyID{m.To}
		} else {
			for _, id := range setups[m.From].parties {
				if id != m.From {
					recipients = append(recipients, id)
				}
			}
		}
		for _, to := range recipients {
			s, ok := setups[to]
			if !ok {
				return fmt.Errorf("message %s to unknown party %s", m, to)
			}
			d := m
			if intercept != nil && !intercept(to, &d) {
				continue
			}
			out, err := s.Step(d)
			if err != nil {
				return fmt.Errorf("%s: %w", to, err)
			}
			queue = append(queue, out...)
		}
	}
	return nil
}
