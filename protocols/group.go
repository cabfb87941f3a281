package protocols

import (
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
)

// checkGroup checks that group is a non-empty list of distinct party ids;
// what names the protocol in errors ("key switch").
func checkGroup(what string, group []PartyID) error {
	if len(group) == 0 {
		return fmt.Errorf("empty %s group", what)
	}
	seen := map[PartyID]bool{}
	for _, id := range group {
		if id == "" || seen[id] {
			return fmt.Errorf("%s group: invalid or repeated party %q", what, id)
		}
		seen[id] = true
	}
	return nil
}

// groupSecretKey turns self's aggregated Shamir share into its additive
// share of the collective secret for exactly this group: the shares of the
// t members of group sum to the secret (Lagrange interpolation at zero,
// mhe.Combiner). members are all N consortium members (they fix the Shamir
// points); group must hold exactly threshold members, self among them. The
// additive share is valid for this group only, which is why a protocol's
// group is fixed before any share is made.
func groupSecretKey(params rlwe.Parameters, what string, self PartyID, members []PartyID, threshold int, share mhe.ShamirSecretShare, group []PartyID) (*rlwe.SecretKey, error) {
	if threshold < 1 || threshold > len(members) {
		return nil, fmt.Errorf("%s: threshold %d out of range 1..%d", what, threshold, len(members))
	}
	if err := checkGroup(what, group); err != nil {
		return nil, err
	}
	if len(group) != threshold {
		return nil, fmt.Errorf("%s: group has %d parties, need exactly t=%d", what, len(group), threshold)
	}
	if !slices.Contains(group, self) {
		return nil, fmt.Errorf("%s: %s is not in the group", what, self)
	}
	if err := checkQPShape(params, share.Poly); err != nil {
		return nil, fmt.Errorf("%s: threshold share: %w", what, err)
	}
	own, err := ShamirPoint(members, self)
	if err != nil {
		return nil, err
	}
	points := make([]mhe.ShamirPublicPoint, len(group))
	for i, id := range group {
		pt, err := ShamirPoint(members, id)
		if err != nil {
			return nil, fmt.Errorf("%s group: %w", what, err)
		}
		points[i] = mhe.ShamirPublicPoint(pt)
	}
	cmb := mhe.NewCombiner(params, mhe.ShamirPublicPoint(own), points, threshold)
	sk := rlwe.NewSecretKey(params)
	if err := cmb.GenAdditiveShare(points, mhe.ShamirPublicPoint(own), share, sk); err != nil {
		return nil, err
	}
	return sk, nil
}
