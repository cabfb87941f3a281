package model

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Validation metrics of a binary classifier from binned aggregates.
//
// In a consortium validation each party scores its own records with the
// analyst's model (in the clear: the model is the analyst's and the records
// are the party's own, so evaluating under encryption there would hide
// nothing from anyone) and releases, encrypted and summed with the other
// parties' under the collective key, only these cells (BinLayout):
//
//	for each score bin r of [r/R, (r+1)/R), r = 0..R-1 (a score of 1 in the last):
//	  pos[r]  number of records with label 1
//	  neg[r]  number of records with label 0
//	  sum[r]  sum of their scores
//	then brier = sum over records of (score - label)^2
//
// Metrics computes from them: counts and the confusion matrix at threshold
// 0.5 (exact: 0.5 is the edge between bins R/2-1 and R/2), accuracy, the
// Brier score, the calibration table (the fine bins merged C at a time) with
// its expected calibration error, and the AUC of the binned ROC curve (the
// trapezoid over the bin edges, which counts a positive and a negative in the
// same bin as half a correctly ordered pair). The binned AUC differs from the
// exact one by at most half the fraction of (positive, negative) pairs that
// share a bin.

// Bin limits.
const (
	DefaultROCBins         = 100
	DefaultCalibrationBins = 10
	MaxROCBins             = 1000
)

// Bins is the binning of a validation.
type Bins struct {
	ROC, Calibration int
}

// DefaultBins is 100 score bins and 10 calibration bins.
var DefaultBins = Bins{ROC: DefaultROCBins, Calibration: DefaultCalibrationBins}

// Validate checks the binning: ROC even (0.5 is a bin edge) in [2,
// MaxROCBins], Calibration a divisor of ROC.
func (b Bins) Validate() error {
	if b.ROC < 2 || b.ROC > MaxROCBins || b.ROC%2 != 0 {
		return fmt.Errorf("model: %d score bins: want an even number from 2 to %d", b.ROC, MaxROCBins)
	}
	if b.Calibration < 1 || b.ROC%b.Calibration != 0 {
		return fmt.Errorf("model: %d calibration bins: want a divisor of the %d score bins", b.Calibration, b.ROC)
	}
	return nil
}

// Cells is the number of values a party releases: 3 per score bin and the
// Brier sum.
func (b Bins) Cells() int { return 3*b.ROC + 1 }

// Layout labels the cells ("bin[0.10,0.11):pos", ..., "brier_sum").
func (b Bins) Layout() []string {
	out := make([]string, 0, b.Cells())
	for r := range b.ROC {
		lo, hi := float64(r)/float64(b.ROC), float64(r+1)/float64(b.ROC)
		for _, k := range []string{"pos", "neg", "sum_score"} {
			out = append(out, fmt.Sprintf("bin[%g,%g):%s", lo, hi, k))
		}
	}
	return append(out, "brier_sum")
}

// bin is the score bin of p (clamped into [0, 1]).
func (b Bins) bin(p float64) int {
	r := int(math.Floor(p * float64(b.ROC)))
	return min(max(r, 0), b.ROC-1)
}

// BinScores accumulates scores (in [0, 1]; clamped) and their labels (0 or
// 1) into cells of b's layout. cells must have b.Cells() entries; it is
// added to, so that batches accumulate.
func (b Bins) BinScores(cells []float64, scores, labels []float64) error {
	if len(cells) != b.Cells() {
		return fmt.Errorf("model: %d cells for a layout of %d", len(cells), b.Cells())
	}
	if len(scores) != len(labels) {
		return fmt.Errorf("model: %d scores for %d labels", len(scores), len(labels))
	}
	for j, p := range scores {
		if math.IsNaN(p) {
			return fmt.Errorf("model: score %d is not a number", j)
		}
		p = min(max(p, 0), 1)
		y := labels[j]
		if y != 0 && y != 1 {
			return errors.New("model: labels must be 0 or 1")
		}
		r := b.bin(p)
		if y == 1 {
			cells[3*r]++
		} else {
			cells[3*r+1]++
		}
		cells[3*r+2] += p
		cells[3*b.ROC] += (p - y) * (p - y)
	}
	return nil
}

// CalibrationBin is one row of the calibration table.
type CalibrationBin struct {
	Low           float64 `json:"low"`
	High          float64 `json:"high"`
	Count         float64 `json:"count"`
	MeanScore     float64 `json:"mean_score"`    // NaN when empty
	ObservedRate  float64 `json:"observed_rate"` // NaN when empty
	Positives     float64 `json:"positives"`
	AbsCalibError float64 `json:"abs_calibration_error"` // |mean score - observed rate|, NaN when empty
}

// Metrics are a binary classifier's validation metrics.
type Metrics struct {
	Records   float64 `json:"records"`
	Positives float64 `json:"positives"`
	Negatives float64 `json:"negatives"`
	// Confusion matrix at threshold 0.5 (score >= 0.5 predicts 1).
	TruePositives  float64 `json:"true_positives"`
	FalsePositives float64 `json:"false_positives"`
	TrueNegatives  float64 `json:"true_negatives"`
	FalseNegatives float64 `json:"false_negatives"`
	Accuracy       float64 `json:"accuracy"`
	Brier          float64 `json:"brier"`
	// AUC of the binned ROC curve (trapezoid).
	AUC         float64          `json:"auc"`
	Calibration []CalibrationBin `json:"calibration"`
	// ECE is the expected calibration error: sum of count/records * |mean
	// score - observed rate| over the calibration bins.
	ECE float64 `json:"ece"`
	// ROC is the binned curve, from threshold 1 down to 0: (FPR, TPR) at
	// each bin edge.
	ROC [][2]float64 `json:"roc,omitempty"`
}

// Metrics computes the metrics from summed cells of b's layout. Counts are
// rounded to integers (decrypted sums carry the small CKKS error); a
// negative count after rounding is an error.
func (b Bins) Metrics(cells []float64) (*Metrics, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if len(cells) != b.Cells() {
		return nil, fmt.Errorf("model: %d cells for a layout of %d", len(cells), b.Cells())
	}
	R := b.ROC
	pos, neg, sum := make([]float64, R), make([]float64, R), make([]float64, R)
	m := &Metrics{}
	for r := range R {
		pos[r], neg[r], sum[r] = math.Round(cells[3*r]), math.Round(cells[3*r+1]), cells[3*r+2]
		if pos[r] < 0 || neg[r] < 0 || math.IsNaN(cells[3*r]) || math.IsNaN(cells[3*r+1]) {
			return nil, fmt.Errorf("model: bin %d has counts %g, %g: not a result of this layout", r, cells[3*r], cells[3*r+1])
		}
		m.Positives += pos[r]
		m.Negatives += neg[r]
		if r >= R/2 {
			m.TruePositives += pos[r]
			m.FalsePositives += neg[r]
		}
	}
	m.Records = m.Positives + m.Negatives
	m.FalseNegatives = m.Positives - m.TruePositives
	m.TrueNegatives = m.Negatives - m.FalsePositives
	nan := math.NaN()
	m.Accuracy, m.Brier, m.AUC = nan, nan, nan
	if m.Records > 0 {
		m.Accuracy = (m.TruePositives + m.TrueNegatives) / m.Records
		m.Brier = max(cells[3*R], 0) / m.Records
	}
	// ROC: thresholds at the bin edges from the top.
	tp, fp := 0.0, 0.0
	m.ROC = append(m.ROC, [2]float64{0, 0})
	auc := 0.0
	for r := R - 1; r >= 0; r-- {
		ntp, nfp := tp+pos[r], fp+neg[r]
		auc += (nfp - fp) * (tp + ntp) / 2
		tp, fp = ntp, nfp
		if m.Positives > 0 && m.Negatives > 0 {
			m.ROC = append(m.ROC, [2]float64{fp / m.Negatives, tp / m.Positives})
		}
	}
	if m.Positives > 0 && m.Negatives > 0 {
		m.AUC = auc / (m.Positives * m.Negatives)
	} else {
		m.ROC = nil
	}
	per := R / b.Calibration
	m.ECE = 0
	for c := range b.Calibration {
		cb := CalibrationBin{Low: float64(c) / float64(b.Calibration), High: float64(c+1) / float64(b.Calibration)}
		s := 0.0
		for r := c * per; r < (c+1)*per; r++ {
			cb.Count += pos[r] + neg[r]
			cb.Positives += pos[r]
			s += sum[r]
		}
		cb.MeanScore, cb.ObservedRate, cb.AbsCalibError = nan, nan, nan
		if cb.Count > 0 {
			cb.MeanScore = s / cb.Count
			cb.ObservedRate = cb.Positives / cb.Count
			cb.AbsCalibError = math.Abs(cb.MeanScore - cb.ObservedRate)
			m.ECE += cb.Count / m.Records * cb.AbsCalibError
		}
		m.Calibration = append(m.Calibration, cb)
	}
	if m.Records == 0 {
		m.ECE = nan
	}
	return m, nil
}

// ExactAUC is the AUC of scores against labels without binning
// (Mann-Whitney, ties counted half): the reference the binned AUC is
// compared with in tests.
func ExactAUC(scores, labels []float64) float64 {
	type sl struct{ s, y float64 }
	v := make([]sl, len(scores))
	for i := range scores {
		v[i] = sl{scores[i], labels[i]}
	}
	slices.SortFunc(v, func(a, b sl) int { return cmp.Compare(a.s, b.s) })
	// Rank-sum with average ranks for ties.
	var rankSum, P, N float64
	for i := 0; i < len(v); {
		j := i
		for j < len(v) && v[j].s == v[i].s {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			if v[k].y == 1 {
				rankSum += avg
				P++
			} else {
				N++
			}
		}
		i = j
	}
	if P == 0 || N == 0 {
		return math.NaN()
	}
	return (rankSum - P*(P+1)/2) / (P * N)
}
