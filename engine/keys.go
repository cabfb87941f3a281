package engine

import (
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// The key and ciphertext types of the engine's API, named here so that the
// packages that hold or pass them without computing on them (the analyst's
// client, mpcctl) need not import lattigo: a move to another lattigo major
// version then stays inside engine/ and protocols/.
type (
	// SecretKey is an RLWE secret key (the analyst's, or a party's fresh
	// prediction key).
	SecretKey = rlwe.SecretKey
	// PublicKey is an RLWE public key (the collective key, or the key a
	// result is switched to).
	PublicKey = rlwe.PublicKey
	// Ciphertext is an RLWE ciphertext of packed CKKS slots.
	Ciphertext = rlwe.Ciphertext
)

// GenPublicKey derives a public key of sk: the analyst keeps only its
// secret key at rest and derives the public key it submits. Public keys are
// randomized: two calls give different keys of the same secret, either of
// which results can be switched to.
func GenPublicKey(p Parameters, sk *SecretKey) *PublicKey {
	return hefloat.NewKeyGenerator(p.Parameters).GenPublicKeyNew(sk)
}
