package protocols

import (
	"crypto/sha256"
	"fmt"

	"go.dedis.ch/kyber/v3"
)

// BeaconMessage returns the message whose threshold-BLS signature seeds the
// common reference string of a setup session. BLS signatures are
// deterministic, so the session id fixes the signature, hence the seed:
// no party, and no group smaller than the threshold, can choose or predict
// it before threshold parties sign.
func BeaconMessage(session string) []byte {
	b := appendStr(nil, "synod/beacon/v1")
	return appendBlob(b, []byte(session))
}

// BeaconSeed verifies cert as the group's signature on msg (normally
// BeaconMessage(session)) and returns the CRS seed, SHA-256 of the
// certificate's canonical encoding.
func BeaconSeed(groupKey kyber.Point, msg, cert []byte) ([]byte, error) {
	if err := VerifyCertificate(groupKey, msg, cert); err != nil {
		return nil, fmt.Errorf("beacon: %w", err)
	}
	h := sha256.Sum256(cert)
	return h[:], nil
}
