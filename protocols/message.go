// Package protocols holds Synod's multiparty protocols as deterministic state
// machines: a protocol instance takes a Message (Step) and returns the
// Messages to send and, once done, its output. Nothing in this package starts
// a goroutine, opens a socket or touches the disk, so every protocol is tested
// in one process and the transport (package parties) is a separate layer.
//
// The topology is a star: every message goes to the session's coordinator,
// which relays it unchanged to its recipients (To == "" means every
// participant but the sender). Messages are signed end to end by the
// transport, so the relay can drop but not alter them.
package protocols

import (
	"fmt"
	"slices"
)

// PartyID names a consortium member ("party-1", ...).
type PartyID string

// Kind names a protocol message type, e.g. "setup.crs.commit".
type Kind string

// Message is one protocol message. Payload encoding is owned by the protocol
// that emits the Kind.
type Message struct {
	Session string
	Kind    Kind
	From    PartyID
	To      PartyID // empty: broadcast to every participant except From
	Payload []byte
}

func (m Message) String() string {
	to := string(m.To)
	if to == "" {
		to = "*"
	}
	return fmt.Sprintf("%s %s→%s (%d bytes)", m.Kind, m.From, to, len(m.Payload))
}

// Broadcast reports whether m goes to every participant.
func (m Message) Broadcast() bool { return m.To == "" }

// ShamirPoint is the public evaluation point of a party in the t-of-N
// sharing: its 1-based position in the sorted member list. Zero is reserved
// for the secret itself.
func ShamirPoint(members []PartyID, id PartyID) (uint64, error) {
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	i := slices.Index(sorted, id)
	if i < 0 {
		return 0, fmt.Errorf("party %q is not a consortium member", id)
	}
	return uint64(i + 1), nil
}
