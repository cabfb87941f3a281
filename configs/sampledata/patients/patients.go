// Package patients generates the synthetic patient tables of configs/sample
// (see configs/sampledata): one party's cohort, drawn from a fixed seed so
// that the same arguments always give the same bytes. No real person is in
// them. Benchmarks call it to write large tables of the same shape.
package patients

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
)

// Header names the columns, in file order (those of configs/schema.yaml's
// dataset patients).
var Header = []string{"age", "sex", "bmi", "systolic_bp", "cholesterol", "smoker", "diabetic"}

// Write writes party's cohort of rows rows as CSV (a header line, then one
// line per patient), drawn from seed. Each party's cohort is drawn from a
// slightly different population (age and BMI shift by party), as hospitals'
// patient mixes differ.
func Write(w io.Writer, party, rows int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, uint64(party)))
	bw := bufio.NewWriterSize(w, 64<<10)
	line := make([]byte, 0, 64)
	for i, h := range Header {
		if i > 0 {
			line = append(line, ',')
		}
		line = append(line, h...)
	}
	line = append(line, '\n')
	if _, err := bw.Write(line); err != nil {
		return err
	}
	shift := float64(party-3) * 2
	for i := 0; i < rows; i++ {
		age := clamp(math.Round(52+shift+rng.NormFloat64()*15), 18, 95)
		sex := float64(rng.IntN(2))
		bmi := clamp(round1(26.5+shift/4+rng.NormFloat64()*4.5+(age-50)*0.03), 15, 55)
		smoker := bern(rng, 0.22)
		bp := clamp(math.Round(118+(age-50)*0.5+(bmi-26)*0.8+smoker*4+rng.NormFloat64()*12), 85, 210)
		chol := clamp(math.Round(190+(age-50)*0.6+rng.NormFloat64()*30), 110, 340)
		diabetic := bern(rng, 1/(1+math.Exp(-(-4.2+0.035*(age-18)+0.09*(bmi-25)))))
		line = line[:0]
		line = strconv.AppendFloat(line, age, 'f', -1, 64)
		line = append(line, ',')
		line = strconv.AppendFloat(line, sex, 'f', -1, 64)
		line = append(line, ',')
		line = strconv.AppendFloat(line, bmi, 'f', 1, 64)
		for _, v := range [...]float64{bp, chol, smoker, diabetic} {
			line = append(line, ',')
			line = strconv.AppendFloat(line, v, 'f', -1, 64)
		}
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteFile writes party's cohort (Write) to the file at path.
func WriteFile(path string, party, rows int, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, party, rows, seed); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

func bern(rng *rand.Rand, p float64) float64 {
	if rng.Float64() < p {
		return 1
	}
	return 0
}
func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
func round1(v float64) float64        { return math.Round(v*10) / 10 }
