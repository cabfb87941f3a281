package model

import (
	"fmt"
	"math"
	"sync"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Feature encoding is the larger half of a data party's work in private
// prediction (one plaintext per feature per batch, at the input level of
// the plan, where every prime of the ciphertext modulus is needed).
// lattigo's Encoder.Encode quantizes each coefficient with
// ckks.SingleFloat64ToFixedPointCRT, which allocates the Barrett constants
// of the whole modulus chain for every coefficient (N allocations per
// plaintext) and goes through big.Float above 2^64. columnEncoder does the
// same computation with the constants cached: the special inverse FFT of
// lattigo's encoder on a reused buffer, rounding of each coefficient to an
// integer below 2^62 (the inverse FFT does not grow magnitudes, and encode
// refuses values with |x|*scale >= 2^62: features are at most
// MaxFeatureValue = 2^20, so 2^60 at the scale 2^40 of ckks-n14), its
// residues by Barrett reduction, and the NTT per prime. The output is
// bit-identical to lattigo's (TestEncodeFeaturesMatchesLattigo).

// columnEncoder encodes real vectors into NTT plaintexts; one per worker.
type columnEncoder struct {
	p     engine.Parameters
	ecd   *hefloat.Encoder
	buf   []complex128
	brc   [][]uint64
	q     []uint64
	two64 []uint64 // 2^64 mod q
	coef  []int64
	slots int
	logSl int
}

// round is x rounded half away from zero (as uint64(|x|+0.5) with the sign).
func round(x float64) int64 {
	if x < 0 {
		return -int64(uint64(-x + 0.5))
	}
	return int64(uint64(x + 0.5))
}

var columnEncoderPools sync.Map // parameter set name -> *sync.Pool of *columnEncoder

// getColumnEncoder returns a pooled encoder for p (put it back with
// putColumnEncoder).
func getColumnEncoder(p engine.Parameters) *columnEncoder {
	v, ok := columnEncoderPools.Load(p.Name)
	if !ok {
		v, _ = columnEncoderPools.LoadOrStore(p.Name, &sync.Pool{})
	}
	if e, ok := v.(*sync.Pool).Get().(*columnEncoder); ok && e.p.Equal(&p.Parameters) {
		return e
	}
	return newColumnEncoder(p)
}

func putColumnEncoder(e *columnEncoder) {
	if v, ok := columnEncoderPools.Load(e.p.Name); ok {
		v.(*sync.Pool).Put(e)
	}
}

func newColumnEncoder(p engine.Parameters) *columnEncoder {
	ringQ := p.RingQ()
	e := &columnEncoder{p: p, ecd: hefloat.NewEncoder(p.Parameters), slots: p.MaxSlots(), logSl: p.LogMaxSlots()}
	e.buf = make([]complex128, e.slots)
	for _, s := range ringQ.SubRings {
		e.brc = append(e.brc, s.BRedConstant)
		e.q = append(e.q, s.Modulus)
		e.two64 = append(e.two64, (math.MaxUint64%s.Modulus+1)%s.Modulus)
	}
	e.coef = make([]int64, 2*e.slots)
	return e
}

// encode writes values (at most MaxSlots, the rest zero) into pt (batched,
// NTT, not Montgomery, full slots) at pt's level and scale.
func (e *columnEncoder) encode(values []float64, pt *rlwe.Plaintext) error {
	if len(values) > e.slots {
		return fmt.Errorf("encode: %d values for %d slots", len(values), e.slots)
	}
	if err := e.check(pt); err != nil {
		return err
	}
	scale := pt.Scale.Float64()
	for i, v := range values {
		if math.IsNaN(v) || math.Abs(v)*scale >= 1<<62 {
			return fmt.Errorf("encode: value %d = %g does not fit the scale 2^%.0f", i, v, math.Log2(scale))
		}
		e.buf[i] = complex(v, 0)
	}
	clear(e.buf[len(values):])
	return e.finish(pt)
}

// encodeColumn is encode of feature i of the records (already checked by
// checkRecords: at most MaxSlots records of magnitude <= MaxFeatureValue).
func (e *columnEncoder) encodeColumn(records [][]float64, i int, pt *rlwe.Plaintext) error {
	if len(records) > e.slots {
		return fmt.Errorf("encode: %d records for %d slots", len(records), e.slots)
	}
	if err := e.check(pt); err != nil {
		return err
	}
	if MaxFeatureValue*pt.Scale.Float64() >= 1<<62 {
		return fmt.Errorf("encode: scale 2^%.0f too large for features of magnitude %d", math.Log2(pt.Scale.Float64()), MaxFeatureValue)
	}
	for j, r := range records {
		e.buf[j] = complex(r[i], 0)
	}
	clear(e.buf[len(records):])
	return e.finish(pt)
}

func (e *columnEncoder) check(pt *rlwe.Plaintext) error {
	if pt == nil || pt.MetaData == nil || !pt.IsBatched || !pt.IsNTT || pt.IsMontgomery || pt.LogDimensions.Cols != e.logSl ||
		pt.Value.N() != 2*e.slots || e.p.RingType() != ring.Standard {
		return fmt.Errorf("encode: plaintext must be a batched NTT plaintext with %d slots", e.slots)
	}
	return nil
}

// finish encodes the slot values in e.buf into pt.
func (e *columnEncoder) finish(pt *rlwe.Plaintext) error {
	buf := e.buf
	scale := pt.Scale.Float64()
	if err := e.ecd.IFFT(buf, e.logSl); err != nil {
		return err
	}
	// Round each coefficient as lattigo's SingleFloat64ToFixedPointCRT
	// does (half away from zero), to an int64 (|x|*scale < 2^62: the
	// inverse FFT averages, |x| <= max |values|), then reduce it modulo
	// each prime, one prime at a time (sequential writes): the two's
	// complement u of c is c + 2^64 when c < 0, so c mod q is
	// (u mod q) - (2^64 mod q).
	n := e.slots
	c := e.coef
	for i, v := range buf {
		c[i] = round(real(v) * scale)
		c[i+n] = round(imag(v) * scale)
	}
	level := pt.Level()
	for j, qj := range e.q[:level+1] {
		brc, t, out := e.brc[j], qj-e.two64[j], pt.Value.Coeffs[j][:2*n]
		for i, ci := range c[:2*n] {
			r := ring.BRedAdd(uint64(ci), qj, brc) + t&uint64(ci>>63)
			if r >= qj {
				r -= qj
			}
			out[i] = r
		}
	}
	e.p.RingQ().AtLevel(level).NTT(pt.Value, pt.Value)
	return nil
}

// ColumnEncoder is the encoder of feature columns, exported for circuits
// outside this package (engine/train) that encode many columns per batch:
// it produces the same plaintexts as lattigo's encoder without its
// per-coefficient allocations. Not safe for concurrent use; get one per
// goroutine and Release it.
type ColumnEncoder struct{ e *columnEncoder }

// GetColumnEncoder returns a pooled encoder for p.
func GetColumnEncoder(p engine.Parameters) *ColumnEncoder {
	return &ColumnEncoder{getColumnEncoder(p)}
}

// Release returns the encoder to its pool; it must not be used after.
func (c *ColumnEncoder) Release() {
	putColumnEncoder(c.e)
	c.e = nil
}

// Encode writes values (at most MaxSlots; the other slots are zero) into pt,
// a batched NTT plaintext, at pt's level and scale. Every |value|*scale must
// be below 2^62.
func (c *ColumnEncoder) Encode(values []float64, pt *rlwe.Plaintext) error {
	return c.e.encode(values, pt)
}
