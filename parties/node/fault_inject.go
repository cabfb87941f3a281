//go:build faultinject

package node

import (
	"os"
	"strings"

	"github.com/synod-mpc/synod/protocols"
)

// SYNOD_FAULT=truncate:KIND makes this node cut the payload of every
// message of that kind in half (a share of the wrong size).
func init() {
	action, kind, ok := strings.Cut(os.Getenv("SYNOD_FAULT"), ":")
	if !ok || action != "truncate" {
		return
	}
	outgoingHook = func(m *protocols.Message) {
		if string(m.Kind) == kind {
			m.Payload = m.Payload[:len(m.Payload)/2]
		}
	}
}
