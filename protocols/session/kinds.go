package session

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/synod-mpc/synod/protocols"
)

// Role is the side of a session a message is for.
type Role uint8

const (
	// ToParty: a party's machine (from the coordinator, or relayed from
	// another party through it).
	ToParty Role = iota + 1
	// ToCoordinator: the coordinator's machine.
	ToCoordinator
)

// Route says how a kind travels: Relayed kinds go party to party through
// the coordinator's node, which forwards them unchanged (To empty: to every
// participant but the sender); the others go to the machine of their role.
type Route struct {
	To      Role
	Relayed bool
	// Opens reports that this kind, addressed to a party that does not
	// know the session yet, starts the session there.
	Opens bool
	// Payload is what the payload holds: a protobuf message of
	// api/synod/v1 (session.proto) or a protocols codec encoding.
	Payload string
}

// The kinds of session messages. Every kind is declared here, once.
const (
	KindSetupStart     protocols.Kind = "setup.start"  // coordinator → party: SetupStart
	KindSetupBeacon    protocols.Kind = "setup.beacon" // party → all: partial BLS signature of the session
	KindSetupStored    protocols.Kind = "setup.stored" // party → coordinator: SetupStored
	KindPropose        protocols.Kind = "session.propose"
	KindApprove        protocols.Kind = "session.approve"
	KindRefuse         protocols.Kind = "session.refuse"
	KindRequest        protocols.Kind = "session.request"
	KindContribution   protocols.Kind = "session.input"
	KindSuppress       protocols.Kind = "session.suppress"
	KindError          protocols.Kind = "session.error"
	KindAbort          protocols.Kind = "session.abort"
	KindKeySwitchAsk   protocols.Kind = "keyswitch.request"
	KindKeySwitchShare                = protocols.KindKeySwitchShare
	KindRefreshAsk     protocols.Kind = "refresh.request"
	KindRefreshShare                  = protocols.KindRefreshShare
	KindModelStore     protocols.Kind = "model.store"
	KindModelStored    protocols.Kind = "model.stored"
	KindPredictStart   protocols.Kind = "predict.start"
	KindPredictReady   protocols.Kind = "predict.ready"
)

// kinds is the routing table of every kind a node accepts.
var kinds = map[protocols.Kind]Route{
	KindSetupStart:     {To: ToParty, Opens: true, Payload: "SetupStart"},
	KindSetupBeacon:    {To: ToParty, Relayed: true, Payload: "tbls partial signature"},
	KindSetupStored:    {To: ToCoordinator, Payload: "SetupStored"},
	KindPropose:        {To: ToParty, Opens: true, Payload: "Proposal"},
	KindApprove:        {To: ToCoordinator, Payload: "Approval"},
	KindRefuse:         {To: ToCoordinator, Payload: "Refusal"},
	KindRequest:        {To: ToParty, Payload: "Request"},
	KindContribution:   {To: ToCoordinator, Payload: "Contribution"},
	KindSuppress:       {To: ToParty, Payload: "Suppress"},
	KindError:          {To: ToCoordinator, Payload: "SessionError"},
	KindAbort:          {To: ToParty, Payload: "Abort"},
	KindKeySwitchAsk:   {To: ToParty, Payload: "protocols.KeySwitchRequest"},
	KindKeySwitchShare: {To: ToCoordinator, Payload: "protocols key-switch share"},
	KindRefreshAsk:     {To: ToParty, Payload: "protocols.RefreshRequest"},
	KindRefreshShare:   {To: ToCoordinator, Payload: "protocols refresh share"},
	KindModelStore:     {To: ToParty, Opens: true, Payload: "ModelStore"},
	KindModelStored:    {To: ToCoordinator, Payload: "ModelStored"},
	KindPredictStart:   {To: ToParty, Opens: true, Payload: "PredictStart"},
	KindPredictReady:   {To: ToCoordinator, Payload: "PredictReady"},
}

func init() {
	// The setup's own kinds (DKG and key generation) are relayed party to
	// party; their payloads are protocols codec encodings.
	for _, k := range []protocols.Kind{protocols.KindDKGPub, protocols.KindDKGDeal, protocols.KindDKGResponse,
		protocols.KindDKGJustification, protocols.KindDKGDone, protocols.KindCRSCommit, protocols.KindCRSReveal,
		protocols.KindCKGShare, protocols.KindRKGRound1, protocols.KindRKGRound2, protocols.KindGKGShare,
		protocols.KindTSKShare, protocols.KindSetupDone} {
		kinds[k] = Route{To: ToParty, Relayed: true, Payload: "protocols setup encoding"}
	}
}

// RouteOf returns a kind's route; ok is false for a kind no node accepts.
func RouteOf(k protocols.Kind) (Route, bool) {
	r, ok := kinds[k]
	return r, ok
}

// Kinds lists every kind with its route (for documentation and tests).
func Kinds() map[protocols.Kind]Route {
	out := make(map[protocols.Kind]Route, len(kinds))
	for k, r := range kinds {
		out[k] = r
	}
	return out
}

// decode unmarshals a payload into m, attributing a malformed one to its
// sender.
func decode(m protocols.Message, into proto.Message) error {
	if err := proto.Unmarshal(m.Payload, into); err != nil {
		return faultf(m.From, "malformed %s: %v", m.Kind, err)
	}
	return nil
}

// encode marshals a payload; the messages of session.proto always marshal.
func encode(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("session: marshal %T: %v", m, err)) // a bug, not input
	}
	return b
}

// decodePayload unmarshals a payload for a decoder that attributes errors
// itself.
func decodePayload(b []byte, into proto.Message) error { return proto.Unmarshal(b, into) }
