// Command sampledata writes the synthetic patient tables shipped in
// configs/sample: one CSV per party, generated from a fixed seed so that
// every run writes the same files. No real person is in them.
//
//	go run ./configs/sampledata -out configs/sample -parties 5 -rows 2000 -seed 2026
//
// Each party's cohort is drawn from a slightly different population (age
// and BMI shift by party), as hospitals' patient mixes differ.
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

func main() {
	out := flag.String("out", "configs/sample", "output directory")
	parties := flag.Int("parties", 5, "number of parties")
	rows := flag.Int("rows", 2000, "rows per party")
	seed := flag.Uint64("seed", 2026, "random seed")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for p := 1; p <= *parties; p++ {
		rng := rand.New(rand.NewPCG(*seed, uint64(p)))
		path := filepath.Join(*out, fmt.Sprintf("patients-party-%d.csv", p))
		if err := write(path, rng, *rows, p); err != nil {
			log.Fatal(err)
		}
	}
}

func write(path string, rng *rand.Rand, rows, party int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"age", "sex", "bmi", "systolic_bp", "cholesterol", "smoker", "diabetic"})
	shift := float64(party-3) * 2
	for i := 0; i < rows; i++ {
		age := clamp(math.Round(52+shift+rng.NormFloat64()*15), 18, 95)
		sex := float64(rng.IntN(2))
		bmi := clamp(round1(26.5+shift/4+rng.NormFloat64()*4.5+(age-50)*0.03), 15, 55)
		smoker := bern(rng, 0.22)
		bp := clamp(math.Round(118+(age-50)*0.5+(bmi-26)*0.8+smoker*4+rng.NormFloat64()*12), 85, 210)
		chol := clamp(math.Round(190+(age-50)*0.6+rng.NormFloat64()*30), 110, 340)
		diabetic := bern(rng, 1/(1+math.Exp(-(-4.2+0.035*(age-18)+0.09*(bmi-25)))))
		w.Write([]string{fmtf(age), fmtf(sex), strconv.FormatFloat(bmi, 'f', 1, 64), fmtf(bp), fmtf(chol), fmtf(smoker), fmtf(diabetic)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
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
func fmtf(v float64) string           { return strconv.FormatFloat(v, 'f', -1, 64) }
