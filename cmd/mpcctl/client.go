package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"google.golang.org/grpc"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/keystore"
	"github.com/synod-mpc/synod/parties/transport"
)

// analyst is a connected analyst session.
type analyst struct {
	cfg    *config.Analyst
	conn   *grpc.ClientConn
	client synodv1.AnalystClient
}

func connect(g *globals, cmd *cobra.Command) (*analyst, error) {
	if g.config == "" {
		return nil, fmt.Errorf("no analyst config: pass --config FILE or set SYNOD_CONFIG")
	}
	cfg, err := config.LoadAnalyst(g.config, cmd.Flags())
	if err != nil {
		return nil, err
	}
	creds, err := loadCredentials(cfg.TLS, cfg.Keystore)
	if err != nil {
		return nil, err
	}
	conn, err := transport.Dial(cfg.Node, cfg.NodeID, creds)
	if err != nil {
		return nil, err
	}
	return &analyst{cfg: cfg, conn: conn, client: synodv1.NewAnalystClient(conn)}, nil
}

func (a *analyst) Close() { a.conn.Close() }

// loadCredentials reads a member's TLS files, its sealed TLS key opened with
// the member's keystore passphrase.
func loadCredentials(files config.TLSFiles, ks config.KeystoreSource) (transport.Credentials, error) {
	pass, err := keystore.Passphrase(ks.PassphraseEnv, ks.PassphraseFile)
	if err != nil {
		return transport.Credentials{}, fmt.Errorf("keystore passphrase: %w", err)
	}
	return transport.LoadCredentials(files, pass)
}

// rlweKey returns the analyst's own RLWE key pair for a parameter set,
// creating it on first use; the secret key is sealed at rest.
func (a *analyst) rlweKey(params engine.Parameters) (*rlwe.SecretKey, *rlwe.PublicKey, error) {
	pass, err := keystore.Passphrase(a.cfg.Keystore.PassphraseEnv, a.cfg.Keystore.PassphraseFile)
	if err != nil {
		return nil, nil, fmt.Errorf("keystore passphrase: %w", err)
	}
	path := filepath.Join(a.cfg.DataDir, "rlwe-"+params.Name+".sealed")
	label := "analyst-rlwe-" + params.Name
	if b, err := keystore.ReadFile(path, pass, label); err == nil {
		sk, err := engine.DecodeSecretKey(params, b)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		pk := rlwe.NewKeyGenerator(params).GenPublicKeyNew(sk)
		return sk, pk, nil
	} else if !os.IsNotExist(err) {
		if _, statErr := os.Stat(path); statErr == nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	sk, pk := engine.GenKeyPair(params)
	b, err := sk.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := keystore.WriteFile(path, pass, b, label); err != nil {
		return nil, nil, fmt.Errorf("store analyst key: %w", err)
	}
	return sk, pk, nil
}

func watch(ctx context.Context, client synodv1.AnalystClient, session string, quiet bool) (*synodv1.Event, time.Duration, error) {
	stream, err := client.Watch(ctx, &synodv1.WatchRequest{Session: session})
	if err != nil {
		return nil, 0, err
	}
	return follow(stream.Recv, quiet)
}

// follow prints progress events to stderr and returns the final one and the
// time the session took on the coordinator, from its first event to its last.
func follow(recv func() (*synodv1.Event, error), quiet bool) (*synodv1.Event, time.Duration, error) {
	var start int64
	for {
		ev, err := recv()
		if err != nil {
			return nil, 0, err
		}
		if start == 0 {
			start = ev.GetTimeUnixNano()
		}
		if !quiet {
			fmt.Fprintf(os.Stderr, "  [%6.2fs] %-20s %s\n", float64(ev.GetTimeUnixNano()-start)/1e9, ev.GetStage(), ev.GetMessage())
		}
		if ev.GetFinal() {
			return ev, time.Duration(ev.GetTimeUnixNano() - start), nil
		}
	}
}
