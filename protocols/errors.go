package protocols

import "fmt"

// ProtocolError is returned by Step when a message is rejected or when a
// check attributable to one party fails. Party names the offending party (the
// sender of a malformed share, the author of a reveal that does not match its
// commit, ...), so that the session can abort naming it.
type ProtocolError struct {
	Party PartyID
	Kind  Kind
	Err   error
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("party %s, %s: %v", e.Party, e.Kind, e.Err)
}

func (e *ProtocolError) Unwrap() error { return e.Err }

func perr(party PartyID, kind Kind, format string, a ...any) *ProtocolError {
	return &ProtocolError{Party: party, Kind: kind, Err: fmt.Errorf(format, a...)}
}

func wrapErr(party PartyID, kind Kind, err error) *ProtocolError {
	return &ProtocolError{Party: party, Kind: kind, Err: err}
}
