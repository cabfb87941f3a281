package ledger

// A consortium chain of in-process validators on loopback, for the tests and
// the benchmark.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.dedis.ch/kyber/v3"
)

type testMember struct {
	id   string
	priv kyber.Scalar
	pub  kyber.Point
}

func newMember(id string) testMember {
	priv := Suite.Scalar().Pick(Suite.RandomStream())
	return testMember{id: id, priv: priv, pub: Suite.Point().Mul(priv, nil)}
}

type testNet struct {
	genesis []byte
	members []testMember
	apps    []*App
	nodes   []*Embedded
	rpc     []string
}

// freePort returns a loopback address free at the time of the call, below
// the kernel's ephemeral range (32768 and up on Linux): a port the kernel
// handed out for ":0" can be taken as the local port of any outgoing
// connection (other tests' nodes dial each other) before the chain binds it.
func freePort(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(22000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port below 32000")
	return ""
}

// startNet starts n validators, one per member p0..p(n-1), and waits until
// the chain has made its first block.
func startNet(t testing.TB, n int) *testNet {
	t.Helper()
	dir := t.TempDir()
	tn := &testNet{}
	members := map[string]kyber.Point{}
	vals := map[string]ValidatorFiles{}
	var files []ValidatorFiles
	for i := 0; i < n; i++ {
		m := newMember(fmt.Sprintf("p%d", i))
		tn.members = append(tn.members, m)
		members[m.id] = m.pub
		v, err := GenerateValidator()
		if err != nil {
			t.Fatal(err)
		}
		vals[m.id] = ValidatorFiles{PubKey: v.PubKey} // genesis from public keys only
		files = append(files, v)
	}
	gen, err := Genesis("synod-test", vals)
	if err != nil {
		t.Fatal(err)
	}
	tn.genesis = gen
	p2p := make([]string, n)
	for i := range p2p {
		p2p[i] = freePort(t)
		tn.rpc = append(tn.rpc, "tcp://"+freePort(t))
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	if os.Getenv("LEDGER_DEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for i := 0; i < n; i++ {
		app, err := NewApp(members, filepath.Join(dir, fmt.Sprintf("app%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		tn.apps = append(tn.apps, app)
		var peers []string
		for j := 0; j < n; j++ {
			if j != i {
				peers = append(peers, files[j].NodeID+"@"+p2p[j])
			}
		}
		e, err := StartEmbedded(EmbeddedConfig{
			Home:             filepath.Join(dir, fmt.Sprintf("node%d", i)),
			Moniker:          fmt.Sprintf("p%d", i),
			ChainID:          "synod-test",
			Genesis:          gen,
			NodeKey:          files[i].NodeKey,
			PrivValidatorKey: files[i].PrivValidatorKey,
			P2PListen:        p2p[i],
			RPCListen:        tn.rpc[i],
			PersistentPeers:  peers,
			FastBlocks:       true,
		}, app, logger)
		if err != nil {
			t.Fatal(err)
		}
		tn.nodes = append(tn.nodes, e)
	}
	t.Cleanup(func() {
		for _, e := range tn.nodes {
			e.Stop()
		}
		for _, a := range tn.apps {
			a.Close()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for tn.apps[0].Height() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the chain made no block within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return tn
}

var nonce atomic.Uint64

// signedTx returns a tx of kind for session, sent and signed by m.
func signedTx(t testing.TB, m testMember, kind, session string) *Tx {
	t.Helper()
	tx := &Tx{Kind: kind, Session: session, Sender: m.id, Body: []byte("body of " + session), Nonce: nonce.Add(1)}
	if err := tx.Sign(KeySigner{Private: m.priv}); err != nil {
		t.Fatal(err)
	}
	return tx
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
