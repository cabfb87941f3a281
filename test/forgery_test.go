package test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/identity"
	"github.com/synod-mpc/synod/parties/keystore"
	"github.com/synod-mpc/synod/parties/transport"
	"github.com/synod-mpc/synod/parties/wire"
	"github.com/synod-mpc/synod/protocols"
)

// TestForgedAndReplayedEnvelopes: a consortium party (valid mTLS
// certificate) that sends a message in another party's name, or replays one,
// is refused with a reason; the node keeps serving. An envelope with a bad
// signature for a running session aborts it naming the party whose
// connection delivered it.
func TestForgedAndReplayedEnvelopes(t *testing.T) {
	c := newCluster(t, 3, 2, "ckks-n13")
	// the TLS keys on disk are sealed: no PEM private key in the clear
	for _, id := range []string{"party-1", "analyst"} {
		raw, err := os.ReadFile(filepath.Join(c.dir, id, "tls-key.sealed"))
		if err != nil {
			t.Fatal(err)
		}
		if !keystore.IsSealed(raw) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
			t.Fatalf("%s's TLS key is not sealed", id)
		}
	}
	creds := memberCredentials(t, c.dir, "party-1")
	pass, err := keystore.Passphrase("", filepath.Join(c.dir, "secrets/party-1.pass"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := keystore.ReadFile(filepath.Join(c.dir, "party-1/identity.key"), pass, "identity")
	if err != nil {
		t.Fatal(err)
	}
	me, err := identity.UnmarshalIdentity("party-1", raw)
	if err != nil {
		t.Fatal(err)
	}
	peers := transport.NewPeers(creds, map[string]string{"party-2": readAddress(t, c.partyConfig(2))})
	defer peers.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Signed by party-1, claiming to be from party-3.
	env, err := wire.Seal(me, protocols.Message{Session: "s1", Kind: "setup.ckg.share", From: "party-1", Payload: []byte("x")}, 1)
	if err != nil {
		t.Fatal(err)
	}
	env.From = "party-3"
	if err := peers.Deliver(ctx, "party-2", env); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("forged sender: want 'bad signature', got %v", err)
	}
	// Properly signed, but for no session the node knows.
	env, _ = wire.Seal(me, protocols.Message{Session: "s2", Kind: "setup.ckg.share", From: "party-1", Payload: []byte("x")}, 2)
	if err := peers.Deliver(ctx, "party-2", env); err == nil || !strings.Contains(err.Error(), "unknown session") {
		t.Fatalf("unknown session: got %v", err)
	}
	// The same envelope again is a replay.
	if err := peers.Deliver(ctx, "party-2", env); err == nil || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("replay: got %v", err)
	}
	// A start request with garbage parameters is refused without harm.
	env, _ = wire.Seal(me, protocols.Message{Session: "s3", Kind: "setup.start", From: "party-1", To: "party-2", Payload: []byte("{not json")}, 3)
	if err := peers.Deliver(ctx, "party-2", env); err != nil {
		t.Logf("garbage setup.start refused at once: %v", err)
	}
	// The node is still up.
	resp, err := peers.Ping(ctx, "party-2")
	if err != nil || resp.GetPartyId() != "party-2" {
		t.Fatalf("party-2 after bad input: %v", err)
	}

	// An envelope with a bad signature for a running session, delivered
	// over party-1's connection, aborts the session naming party-1: at the
	// coordinator (party-2) directly, and at a party (party-3) that reports
	// it to the coordinator.
	seq := uint64(100)
	for _, target := range []string{"party-2", "party-3"} {
		t.Run("bad signature to "+target, func(t *testing.T) {
			conn, err := transport.Dial(readAddress(t, c.partyConfig(2)), "party-2", memberCredentials(t, c.dir, "analyst"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			stream, err := synodv1.NewAnalystClient(conn).Setup(sctx, &synodv1.SetupRequest{Parameters: "ckks-n13"})
			if err != nil {
				t.Fatal(err)
			}
			first, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			session := first.GetSession()
			seq++
			env, err := wire.Seal(me, protocols.Message{Session: session, Kind: "dkg.deal", From: "party-1", Payload: []byte("x")}, seq)
			if err != nil {
				t.Fatal(err)
			}
			env.Payload = []byte("y") // altered after signing
			peers := transport.NewPeers(creds, map[string]string{target: readAddress(t, c.partyConfig(map[string]int{"party-2": 2, "party-3": 3}[target]))})
			defer peers.Close()
			if err := peers.Deliver(sctx, target, env); err == nil || !strings.Contains(err.Error(), "bad signature") {
				t.Fatalf("altered envelope: want 'bad signature', got %v", err)
			}
			began := time.Now()
			for ev := first; ; {
				if ev.GetFinal() {
					if !ev.GetFailed() || ev.GetParty() != "party-1" || !strings.Contains(ev.GetMessage(), "bad signature") {
						t.Fatalf("session %s ended with %+v, want a failure naming party-1", session, ev)
					}
					t.Logf("aborted in %s: %s", time.Since(began).Round(time.Millisecond), ev.GetMessage())
					break
				}
				if ev, err = stream.Recv(); err != nil {
					t.Fatalf("session %s: %v", session, err)
				}
			}
			// the coordinator still serves
			if _, err := peers.Ping(sctx, target); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// memberCredentials loads a member's TLS credentials from the consortium
// directory as its node or mpcctl does: the TLS key is sealed and opens
// with the member's passphrase.
func memberCredentials(t testing.TB, dir, id string) transport.Credentials {
	t.Helper()
	pass, err := keystore.Passphrase("", filepath.Join(dir, "secrets", id+".pass"))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := transport.LoadCredentials(config.TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, id, "tls.pem"),
		Key: filepath.Join(dir, id, "tls-key.sealed")}, pass)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}
