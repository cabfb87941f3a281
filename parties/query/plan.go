package query

import (
	"fmt"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
)

// Plan describes what running a query costs and needs, without running it.
type Plan struct {
	Dataset       string   `json:"dataset"`
	Parameters    string   `json:"parameters"`
	Groups        int      `json:"groups"`
	CellsPerGroup int      `json:"cells_per_group"`
	Cells         int      `json:"cells"`
	Slots         int      `json:"slots"`
	Ciphertexts   int      `json:"ciphertexts"`
	Depth         int      `json:"depth"`
	Keys          []string `json:"keys"`
	// BytesPerParty is the encrypted input each data party sends; a party
	// in the key-switching group also sends one share of KeySwitchShareBytes.
	BytesPerParty       int `json:"bytes_per_party"`
	KeySwitchShareBytes int `json:"key_switch_share_bytes"`
	ResultBytes         int `json:"result_bytes"`
	// ValueBound is the largest magnitude one party may contribute to one
	// cell; each party checks its cells against it before encrypting.
	ValueBound float64  `json:"value_bound"`
	Layout     []string `json:"layout"`
}

// Explain plans spec under the parameter set p. Every statistic is a sum,
// so the circuit is one addition of the parties' ciphertexts (depth 0) and
// needs only the collective public key and a key switch to the analyst's key:
// no relinearization key, no Galois key.
func Explain(spec *synodv1.QuerySpec, p engine.Parameters) (*Plan, error) {
	if err := Validate(spec); err != nil {
		return nil, err
	}
	layout := Layout(spec)
	if len(layout) > p.MaxSlots() {
		return nil, fmt.Errorf("query: %d cells exceed the %d slots of one %s ciphertext", len(layout), p.MaxSlots(), p.Name)
	}
	ct := engine.CiphertextBinarySize(p, p.AggregateLevel)
	return &Plan{
		Dataset:       spec.GetDataset(),
		Parameters:    p.Name,
		Groups:        groupCount(spec),
		CellsPerGroup: len(groupSlots(spec)),
		Cells:         len(layout),
		Slots:         p.MaxSlots(),
		Ciphertexts:   1,
		Depth:         0,
		Keys: []string{
			"collective public key (each party encrypts its partial sums)",
			"analyst RLWE public key (target of the threshold public key switch)",
		},
		BytesPerParty: ct,
		// A public-key-switch share is one polynomial at the ciphertext's level.
		KeySwitchShareBytes: ct / 2,
		ResultBytes:         ct,
		ValueBound:          ValueBound(),
		Layout:              layout,
	}, nil
}
