// Package analyst is the analyst's side of Synod, without its command
// line: the connection to a node with the analyst's sealed TLS key, the
// analyst's own RLWE key (sealed at rest), sessions submitted, followed and
// fetched, their results decrypted into a query's cells or a validation's
// metrics, encrypted model uploads, and the store of received results that
// an audit later checks.
//
// Errors of the node's RPCs are returned as the gRPC status errors they
// are, unwrapped, so that a caller can read their code; a session that
// ran and failed is a *FailedError.
package analyst

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/keystore"
	"github.com/synod-mpc/synod/parties/transport"
)

// Client is a connection to a node's analyst API.
type Client struct {
	cfg  *config.Analyst // nil for a connection made with Dial
	conn *grpc.ClientConn
	rpc  synodv1.AnalystClient
}

// Connect connects to the analyst's node (cfg.Node, whose certificate must
// name cfg.NodeID) with the analyst's TLS credentials.
func Connect(cfg *config.Analyst) (*Client, error) {
	creds, err := LoadCredentials(cfg.TLS, cfg.Keystore)
	if err != nil {
		return nil, err
	}
	c, err := Dial(cfg.Node, cfg.NodeID, creds)
	if err != nil {
		return nil, err
	}
	c.cfg = cfg
	return c, nil
}

// Dial connects to the node at address, whose certificate must name nodeID,
// with any member's credentials: a party's operator predicts its own
// records through the same API, with the party's certificate.
func Dial(address, nodeID string, creds transport.Credentials) (*Client, error) {
	conn, err := transport.Dial(address, nodeID, creds)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, rpc: synodv1.NewAnalystClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// LoadCredentials reads a member's TLS files, its sealed TLS key opened with
// the member's keystore passphrase.
func LoadCredentials(files config.TLSFiles, ks config.KeystoreSource) (transport.Credentials, error) {
	pass, err := keystore.Passphrase(ks.PassphraseEnv, ks.PassphraseFile)
	if err != nil {
		return transport.Credentials{}, fmt.Errorf("keystore passphrase: %w", err)
	}
	return transport.LoadCredentials(files, pass)
}

// Parties lists the consortium's parties as the node sees them, with the
// threshold and the parameter set.
func (c *Client) Parties(ctx context.Context) (*synodv1.ListPartiesResponse, error) {
	return c.rpc.ListParties(ctx, &synodv1.ListPartiesRequest{})
}

// Models lists the encrypted models the node stores.
func (c *Client) Models(ctx context.Context) ([]*synodv1.ModelInfo, error) {
	resp, err := c.rpc.ListModels(ctx, &synodv1.ListModelsRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetModels(), nil
}

// Setup has the consortium generate its keys with the named parameter set
// ("" for the consortium's) and follows the setup to its end. The final
// event says whether it succeeded; the duration is the setup's on the
// coordinator.
func (c *Client) Setup(ctx context.Context, parameters string, onEvent EventFunc) (*synodv1.Event, time.Duration, error) {
	stream, err := c.rpc.Setup(ctx, &synodv1.SetupRequest{Parameters: parameters})
	if err != nil {
		return nil, 0, err
	}
	return Follow(stream.Recv, onEvent)
}

// Predict has the node predict its own records with a stored encrypted
// model (the node accepts this only from its own party certificate) and
// follows the session to its end.
func (c *Client) Predict(ctx context.Context, req *synodv1.PredictRequest, onEvent EventFunc) (*synodv1.Event, time.Duration, error) {
	stream, err := c.rpc.Predict(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	return Follow(stream.Recv, onEvent)
}

// EventFunc receives a session's events as they arrive, with the time since
// the session's first event on the coordinator.
type EventFunc func(ev *synodv1.Event, elapsed time.Duration)

// Follow reads a session's events until the final one, handing each to
// onEvent (if not nil), and returns the final one and the time the session
// took on the coordinator, from its first event to its last.
func Follow(recv func() (*synodv1.Event, error), onEvent EventFunc) (*synodv1.Event, time.Duration, error) {
	var start int64
	for {
		ev, err := recv()
		if err != nil {
			return nil, 0, err
		}
		if start == 0 {
			start = ev.GetTimeUnixNano()
		}
		elapsed := time.Duration(ev.GetTimeUnixNano() - start)
		if onEvent != nil {
			onEvent(ev, elapsed)
		}
		if ev.GetFinal() {
			return ev, elapsed, nil
		}
	}
}
