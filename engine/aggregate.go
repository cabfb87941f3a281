package engine

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Aggregates are the simplest Synod circuit: every data party encrypts a
// short vector of local partial sums ([count, sum_age, sum_bmi], ...) under
// the collective public key, the coordinator adds the ciphertexts, and the
// result is key-switched to the analyst, who decrypts it with its own key.
// No multiplication happens, so inputs are encrypted low in the modulus chain
// (p.AggregateLevel) with a large scale (2^p.AggregateLogScale): the large
// scale is what makes the noise flooding of decryption shares (flooding.go)
// negligible next to the released values, and the low level keeps ciphertexts
// small on the wire.

// maxLogSummands is log2 of the number of inputs a sum is sized for (1024
// parties, or one party contributing many ciphertexts). MaxAggregateValue
// keeps that many maximal inputs below Q/2 at the aggregate level, so that a
// sum never wraps around the modulus.
const maxLogSummands = 10

// maxLogAggregateValue caps MaxAggregateValue independently of the modulus:
// encoding runs in float64 (53-bit mantissa) through an FFT of size N/2, so an
// input of magnitude 2^32 is encoded with an absolute error around
// 2^32 * 2^-53 * LogN ~ 1e-5, well below the flooding error promised by
// Precision. Larger inputs would lose precision in the encoder, not in the
// ciphertext.
const maxLogAggregateValue = 32

// MaxAggregateValue is the largest magnitude EncryptVector accepts for one
// value: 2^32 (about 4.3e9) for every registered parameter set, lower only if
// the modulus at the aggregate level lacked room for maxLogSummands inputs of
// that size at scale 2^AggregateLogScale.
func MaxAggregateValue(p Parameters) float64 {
	headroom := int(math.Floor(logQAtLevel(p, p.AggregateLevel))) - 1 - p.AggregateLogScale - maxLogSummands
	return math.Exp2(float64(min(headroom, maxLogAggregateValue)))
}

// logQAtLevel is log2 of the product of the first level+1 moduli of Q.
func logQAtLevel(p Parameters, level int) float64 {
	var logQ float64
	for _, q := range p.Q()[:level+1] {
		logQ += math.Log2(float64(q))
	}
	return logQ
}

// encodeLogScale is the scale at which EncryptVector runs lattigo's encoder
// before lifting the plaintext to 2^AggregateLogScale by an exact integer
// multiplication.
const encodeLogScale = 30

// aggregateScale is the scale of aggregate inputs.
func aggregateScale(p Parameters) rlwe.Scale {
	return rlwe.NewScale(math.Exp2(float64(p.AggregateLogScale)))
}

// checkAggregateParameters rejects parameter values that would make the
// aggregate encoding meaningless (a zero Parameters, a level beyond the chain).
func checkAggregateParameters(p Parameters) error {
	if p.N() == 0 {
		return errors.New("parameters are not initialised (use ParametersByName)")
	}
	if p.AggregateLevel < 0 || p.AggregateLevel > p.MaxLevel() {
		return fmt.Errorf("parameter set %s: aggregate level %d outside [0, %d]", p.Name, p.AggregateLevel, p.MaxLevel())
	}
	if p.AggregateLogScale < 1 || float64(p.AggregateLogScale) >= logQAtLevel(p, p.AggregateLevel)-1 {
		return fmt.Errorf("parameter set %s: aggregate scale 2^%d does not fit the modulus at level %d", p.Name, p.AggregateLogScale, p.AggregateLevel)
	}
	return nil
}

// GenKeyPair generates the analyst's own RLWE key pair: results are
// key-switched to the public key and only the holder of the secret key reads
// them.
func GenKeyPair(p Parameters) (*rlwe.SecretKey, *rlwe.PublicKey) {
	return hefloat.NewKeyGenerator(p.Parameters).GenKeyPairNew()
}

// EncryptVector encrypts values into the first len(values) slots of one
// ciphertext at level p.AggregateLevel and scale 2^p.AggregateLogScale.
// Values must be finite and at most MaxAggregateValue(p) in magnitude.
func EncryptVector(p Parameters, pk *rlwe.PublicKey, values []float64) (*rlwe.Ciphertext, error) {
	if err := checkAggregateParameters(p); err != nil {
		return nil, fmt.Errorf("encrypt vector: %w", err)
	}
	return encryptAt(p, pk, values, p.AggregateLevel, p.AggregateLogScale)
}

// encryptAt is EncryptVector at any level and power-of-two scale.
func encryptAt(p Parameters, pk *rlwe.PublicKey, values []float64, level, logScale int) (*rlwe.Ciphertext, error) {
	if pk == nil {
		return nil, errors.New("encrypt vector: nil public key")
	}
	if err := checkPublicKeyShape(p, pk); err != nil {
		return nil, fmt.Errorf("encrypt vector: %w", err)
	}
	if len(values) == 0 {
		return nil, errors.New("encrypt vector: no values")
	}
	if len(values) > p.MaxSlots() {
		return nil, fmt.Errorf("encrypt vector: %d values exceed the %d slots of %s", len(values), p.MaxSlots(), p.Name)
	}
	limit := MaxAggregateValue(p)
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("encrypt vector: value %d is %v", i, v)
		}
		if math.Abs(v) > limit {
			// The value itself stays out of the error: it may be a party's
			// (noised) statistic, and errors travel to other parties' logs.
			return nil, fmt.Errorf("encrypt vector: value %d exceeds the bound %g in magnitude", i, limit)
		}
	}

	// lattigo encodes value*scale through big.Float whenever it exceeds
	// 2^64 (every coefficient, at 2^60 with values above 16): ~260k
	// allocations per ciphertext at LogN=14. Encoding at 2^30 (values
	// below 2^32 stay under 2^62) and multiplying by the integer 2^(s-30)
	// in the ring gives the same plaintext up to a rounding of 1/2 per
	// coefficient at scale 2^30: ~2^-24 after decoding, negligible next to
	// Precision.
	pt := hefloat.NewPlaintext(p.Parameters, level)
	lift := max(logScale-encodeLogScale, 0)
	pt.Scale = rlwe.NewScale(math.Exp2(float64(logScale - lift)))
	ecd := getEncoder(p)
	defer putEncoder(p, ecd)
	if err := ecd.Encode(values, pt); err != nil {
		return nil, fmt.Errorf("encrypt vector: encode: %w", err)
	}
	if lift > 0 {
		p.RingQ().AtLevel(level).MulScalar(pt.Value, uint64(1)<<lift, pt.Value)
		pt.Scale = rlwe.NewScale(math.Exp2(float64(logScale)))
	}
	ct := hefloat.NewCiphertext(p.Parameters, 1, level)
	if err := hefloat.NewEncryptor(p.Parameters, pk).Encrypt(pt, ct); err != nil {
		return nil, fmt.Errorf("encrypt vector: %w", err)
	}
	return ct, nil
}

// Sum adds ciphertexts that share degree, level and scale (as produced by
// EncryptVector). Mismatches are refused rather than silently rescaled: in an
// aggregate they mean a party used other parameters.
func Sum(p Parameters, cts []*rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	if len(cts) == 0 {
		return nil, errors.New("sum: no ciphertexts")
	}
	for i, ct := range cts {
		if err := checkCiphertextShape(p, ct); err != nil {
			return nil, fmt.Errorf("sum: ciphertext %d: %w", i, err)
		}
	}
	first := cts[0]
	for i, ct := range cts[1:] {
		switch {
		case ct.Degree() != first.Degree():
			return nil, fmt.Errorf("sum: ciphertext %d has degree %d, ciphertext 0 has %d", i+1, ct.Degree(), first.Degree())
		case ct.Level() != first.Level():
			return nil, fmt.Errorf("sum: ciphertext %d is at level %d, ciphertext 0 at %d", i+1, ct.Level(), first.Level())
		case ct.Scale.Cmp(first.Scale) != 0:
			return nil, fmt.Errorf("sum: ciphertext %d has scale 2^%.2f, ciphertext 0 has 2^%.2f", i+1, math.Log2(ct.Scale.Float64()), math.Log2(first.Scale.Float64()))
		case ct.IsNTT != first.IsNTT:
			return nil, fmt.Errorf("sum: ciphertext %d differs from ciphertext 0 in NTT form", i+1)
		}
	}
	// Shapes are checked, so the sum is polynomial addition modulo each
	// prime: an hefloat.Evaluator would allocate ~30 MB of buffers at
	// LogN=14 for nothing.
	ringQ := p.RingQ().AtLevel(first.Level())
	acc := first.CopyNew()
	for _, ct := range cts[1:] {
		for j := range acc.Value {
			ringQ.Add(acc.Value[j], ct.Value[j], acc.Value[j])
		}
	}
	return acc, nil
}

// DecryptVector decrypts ct with sk and returns the real parts of its first n
// slots.
func DecryptVector(p Parameters, sk *rlwe.SecretKey, ct *rlwe.Ciphertext, n int) ([]float64, error) {
	if err := checkCiphertextShape(p, ct); err != nil {
		return nil, fmt.Errorf("decrypt vector: %w", err)
	}
	if ct.Degree() != 1 {
		return nil, fmt.Errorf("decrypt vector: ciphertext of degree %d, expected 1", ct.Degree())
	}
	if sk == nil {
		return nil, errors.New("decrypt vector: nil secret key")
	}
	if sk.Value.Q.N() != p.N() || sk.LevelQ() < ct.Level() {
		return nil, fmt.Errorf("decrypt vector: secret key (N=%d, level %d) does not fit ciphertext (N=%d, level %d)", sk.Value.Q.N(), sk.LevelQ(), p.N(), ct.Level())
	}
	if n < 1 || n > p.MaxSlots() {
		return nil, fmt.Errorf("decrypt vector: n=%d outside [1, %d]", n, p.MaxSlots())
	}
	pt := hefloat.NewDecryptor(p.Parameters, sk).DecryptNew(ct)
	slots := make([]complex128, p.MaxSlots())
	ecd := getEncoder(p)
	defer putEncoder(p, ecd)
	if err := ecd.Decode(pt, slots); err != nil {
		return nil, fmt.Errorf("decrypt vector: decode: %w", err)
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = real(slots[i])
	}
	return out, nil
}

// checkCiphertextShape checks that ct is a usable ciphertext of p: present,
// with polynomials of p's ring degree at one level within the chain, and a
// positive scale. It guards the evaluator, which panics on mismatches.
func checkCiphertextShape(p Parameters, ct *rlwe.Ciphertext) error {
	if ct == nil || ct.MetaData == nil {
		return errors.New("nil ciphertext")
	}
	if len(ct.Value) < 2 {
		return fmt.Errorf("ciphertext has %d polynomials, expected at least 2", len(ct.Value))
	}
	level := ct.Value[0].Level()
	if level < 0 || level > p.MaxLevel() {
		return fmt.Errorf("ciphertext level %d outside [0, %d]", level, p.MaxLevel())
	}
	for i, pol := range ct.Value {
		if pol.N() != p.N() {
			return fmt.Errorf("ciphertext polynomial %d has ring degree %d, expected %d (parameter set %s)", i, pol.N(), p.N(), p.Name)
		}
		if pol.Level() != level {
			return fmt.Errorf("ciphertext polynomial %d is at level %d, polynomial 0 at %d", i, pol.Level(), level)
		}
	}
	if ct.Scale.Value.Sign() <= 0 {
		return fmt.Errorf("ciphertext scale %v is not positive", &ct.Scale.Value)
	}
	return nil
}

// checkPublicKeyShape checks that pk belongs to p's ring.
func checkPublicKeyShape(p Parameters, pk *rlwe.PublicKey) error {
	if len(pk.Value) != 2 {
		return fmt.Errorf("public key has %d components, expected 2", len(pk.Value))
	}
	for i, v := range pk.Value {
		if v.Q.N() != p.N() {
			return fmt.Errorf("public key component %d has ring degree %d, expected %d (parameter set %s)", i, v.Q.N(), p.N(), p.Name)
		}
		if v.Q.Level() < p.AggregateLevel {
			return fmt.Errorf("public key component %d is at level %d, below the aggregate level %d", i, v.Q.Level(), p.AggregateLevel)
		}
	}
	return nil
}

// isPowerOfTwo reports whether n is a positive power of two.
func isPowerOfTwo(n int) bool { return n > 0 && bits.OnesCount(uint(n)) == 1 }

// Encoders hold FFT tables and buffers (megabytes at LogN=14) and are not
// safe for concurrent use: they are pooled per parameter set instead of being
// built on every call.
var encoderPools sync.Map // parameter set name -> *sync.Pool of *hefloat.Encoder

func encoderPool(p Parameters) *sync.Pool {
	key := fmt.Sprintf("%s/%d/%v", p.Name, p.LogN(), p.Q())
	if pool, ok := encoderPools.Load(key); ok {
		return pool.(*sync.Pool)
	}
	params := p.Parameters
	pool, _ := encoderPools.LoadOrStore(key, &sync.Pool{New: func() any { return hefloat.NewEncoder(params) }})
	return pool.(*sync.Pool)
}

func getEncoder(p Parameters) *hefloat.Encoder    { return encoderPool(p).Get().(*hefloat.Encoder) }
func putEncoder(p Parameters, e *hefloat.Encoder) { encoderPool(p).Put(e) }
