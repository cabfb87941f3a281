// Package policy is a party's rules for what it contributes to: which
// analysts may ask, which columns they may touch, the smallest cohort a
// released cell may describe, and how much differential privacy it demands
// and has left to give each analyst. A refusal names the rule that refused.
package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Policy is one party's rules. The zero Policy allows every consortium
// analyst, every column, any cohort size and no differential privacy. Its
// tags declare the keys of the policy section of a party's configuration
// (see package config).
type Policy struct {
	// Analysts allowed to query this party; empty allows every analyst of
	// the consortium.
	Analysts []string `yaml:"analysts,omitempty" help:"analysts allowed to query this party, comma-separated (default: every consortium analyst)"`
	// Columns maps a dataset to the columns analysts may use in it (in
	// aggregates, filters or groups); a dataset absent here allows all, an
	// empty list none.
	Columns map[string][]string `yaml:"columns,omitempty" names:"dataset" help:"dataset to the columns analysts may use in it"`
	// MinCohort is the smallest count a released cell may have; smaller
	// cells are suppressed consortium-wide. 0 disables the rule.
	MinCohort int `yaml:"min_cohort,omitempty" help:"smallest count a released cell may have (0: no minimum)"`
	// DP is this party's differential privacy requirement.
	DP DP `yaml:"dp,omitempty"`
	// Training is what this party allows of training sessions.
	Training Training `yaml:"training,omitempty"`
}

// Training are the rules for training sessions.
type Training struct {
	// DenyGram refuses exact-mode training, which releases to the analyst,
	// every round, the weighted Gram matrix of the features (Z^T W Z) and
	// Z^T y: sums over the rows, like a query's, but many at once. Encrypted
	// mode releases only the final model.
	DenyGram bool `yaml:"deny_gram,omitempty" help:"refuse exact-mode training, which releases the features' Gram matrix to the analyst every round"`
}

// DP are the differential privacy rules.
type DP struct {
	// Require refuses queries that ask for no noise.
	Require bool `yaml:"require,omitempty" help:"contribute only to differentially private queries"`
	// MaxEpsilon bounds the epsilon one query may spend.
	MaxEpsilon float64 `yaml:"max_epsilon,omitempty" help:"largest epsilon one query may spend (0: no limit)"`
	// Budget bounds the total epsilon an analyst may spend (0: unbounded).
	Budget float64 `yaml:"budget,omitempty" help:"total epsilon each analyst may spend (0: unbounded)"`
}

// Request is what a query asks of the policy.
type Request struct {
	// ReleasesGram is set for exact-mode training.
	ReleasesGram bool
	Analyst      string
	Dataset      string
	Columns      []string // every column the query reads
	// Epsilon is the privacy loss the query spends (0: no noise asked).
	Epsilon float64
	// Spent is the epsilon the analyst has already spent, as recorded on
	// the chain.
	Spent float64
}

// Refusal is a policy decision against a query.
type Refusal struct {
	Rule   string // "analysts", "columns", "dp.require", "dp.max_epsilon", "dp.budget"
	Reason string
}

func (r *Refusal) Error() string { return fmt.Sprintf("policy rule %s: %s", r.Rule, r.Reason) }

// Check decides a request: nil to approve, a *Refusal otherwise.
func (p *Policy) Check(r Request) error {
	if len(p.Analysts) > 0 && !slices.Contains(p.Analysts, r.Analyst) {
		return &Refusal{"analysts", fmt.Sprintf("analyst %s is not allowed to query this party", r.Analyst)}
	}
	if allowed, ok := p.Columns[r.Dataset]; ok {
		var denied []string
		for _, c := range r.Columns {
			if !slices.Contains(allowed, c) && !slices.Contains(denied, c) {
				denied = append(denied, c)
			}
		}
		if len(denied) > 0 {
			return &Refusal{"columns", fmt.Sprintf("column(s) %s of %s are not released by this party", strings.Join(denied, ", "), r.Dataset)}
		}
	}
	if p.Training.DenyGram && r.ReleasesGram {
		return &Refusal{"training.deny_gram", "this party does not take part in exact-mode training, which releases the features' Gram matrix every round (use --mode encrypted)"}
	}
	if p.DP.Require && r.Epsilon <= 0 {
		return &Refusal{"dp.require", "this party contributes only to differentially private queries (set an epsilon)"}
	}
	if r.Epsilon < 0 {
		return &Refusal{"dp.max_epsilon", fmt.Sprintf("epsilon %g is negative", r.Epsilon)}
	}
	if p.DP.MaxEpsilon > 0 && r.Epsilon > p.DP.MaxEpsilon {
		return &Refusal{"dp.max_epsilon", fmt.Sprintf("epsilon %g exceeds this party's limit of %g per query", r.Epsilon, p.DP.MaxEpsilon)}
	}
	if p.DP.Budget > 0 && r.Spent+r.Epsilon > p.DP.Budget {
		return &Refusal{"dp.budget", fmt.Sprintf("analyst %s has spent epsilon %g of a budget of %g; this query needs %g",
			r.Analyst, r.Spent, p.DP.Budget, r.Epsilon)}
	}
	return nil
}

// Validate checks the policy's own values.
func (p *Policy) Validate() error {
	switch {
	case p.MinCohort < 0:
		return fmt.Errorf("policy.min_cohort: %d is negative", p.MinCohort)
	case p.DP.MaxEpsilon < 0:
		return fmt.Errorf("policy.dp.max_epsilon: %g is negative", p.DP.MaxEpsilon)
	case p.DP.Budget < 0:
		return fmt.Errorf("policy.dp.budget: %g is negative", p.DP.Budget)
	}
	return nil
}
