package engine

import (
	"math"
	"math/big"
	"testing"
)

// TestMinRefreshLevel checks the helper's contract on every parameter set:
// at the level it returns, Q holds the sum of the group's masks (each below
// 2^logBound in magnitude, logBound = 128 + log2 of the default scale) with
// room to spare, and one level lower it does not.
func TestMinRefreshLevel(t *testing.T) {
	for _, name := range ParameterNames() {
		p := testParams(t, name)
		for _, group := range []int{1, 2, 3, 5, 16} {
			level, logBound, err := MinRefreshLevel(p, p.DefaultScale(), group)
			if err != nil {
				t.Logf("%s, group of %d: %v", name, group, err)
				if name != "ckks-n13" || group < 5 {
					t.Fatalf("%s refuses a group of %d", name, group)
				}
				continue
			}
			if want := 128 + uint(p.LogDefaultScale()); logBound != want {
				t.Fatalf("%s: logBound %d, want %d", name, logBound, want)
			}
			masks := new(big.Int).Lsh(big.NewInt(int64(group)), logBound)
			qAt := func(l int) *big.Int {
				q := big.NewInt(1)
				for _, qi := range p.Q()[:l+1] {
					q.Mul(q, new(big.Int).SetUint64(qi))
				}
				return q
			}
			if qAt(level).Cmp(masks) <= 0 {
				t.Fatalf("%s, group of %d: Q at level %d does not hold %d masks of 2^%d", name, group, level, group, logBound)
			}
			if level > 0 && qAt(level-1).Cmp(masks) > 0 {
				t.Fatalf("%s, group of %d: level %d is not the lowest", name, group, level)
			}
			t.Logf("%s, group of %d: level %d of %d", name, group, level, p.MaxLevel())
		}
		// A scale above the default needs larger masks; below, the
		// default's are kept.
		hi, _, err := MinRefreshLevel(p, p.DefaultScale().Mul(p.DefaultScale()), 2)
		lo, _, err2 := MinRefreshLevel(p, p.DefaultScale(), 2)
		if err == nil && err2 == nil && hi <= lo {
			t.Fatalf("%s: a squared scale refreshes from level %d, the default from %d", name, hi, lo)
		}
	}
}

// TestRefreshFloodingBound checks that the refresh noise, as lattigo draws
// it (its fresh noise added in quadrature, truncated at 6 sigma), stays
// below every prime of Q, which its sampler needs (see flooding.go).
func TestRefreshFloodingBound(t *testing.T) {
	for _, name := range ParameterNames() {
		p := testParams(t, name)
		bound := floodingBoundFactor * math.Hypot(RefreshFloodingSigma(p), p.NoiseFreshSK())
		for i, q := range p.Q() {
			if bound >= float64(q) {
				t.Fatalf("%s: refresh noise bound %.3g not below prime %d (%d)", name, bound, i, q)
			}
		}
		if d := RefreshFloodingDistribution(p); d.Sigma != RefreshFloodingSigma(p) || d.Bound != 6*d.Sigma {
			t.Fatalf("%s: distribution %+v", name, d)
		}
	}
}
