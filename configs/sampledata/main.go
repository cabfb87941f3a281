// Command sampledata writes the synthetic patient tables shipped in
// configs/sample: one CSV per party, generated from a fixed seed so that
// every run writes the same files. No real person is in them.
//
//	go run ./configs/sampledata -out configs/sample -parties 5 -rows 2000 -seed 2026
//
// Each party's cohort is drawn from a slightly different population (age
// and BMI shift by party), as hospitals' patient mixes differ. The generator
// itself is the package configs/sampledata/patients, which benchmarks call
// to write larger tables of the same shape.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/synod-mpc/synod/configs/sampledata/patients"
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
		path := filepath.Join(*out, fmt.Sprintf("patients-party-%d.csv", p))
		if err := patients.WriteFile(path, p, *rows, *seed); err != nil {
			log.Fatal(err)
		}
	}
}
