package node

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/synod-mpc/synod/protocols/session"
)

// store persists what a session machine asks to keep: the setup's keys
// (secrets sealed), an encrypted model, a party's predictions.
func (n *Node) store(sessionID string, what any) error {
	switch w := what.(type) {
	case *session.SetupKeys:
		st := &keyState{
			Meta: setupMeta{Session: sessionID, Parameters: w.Keys.Params.Name, Parties: n.parties,
				Threshold: int(w.Start.GetThreshold()), Digest: w.Keys.Setup.Digest, GroupKey: w.GroupKey},
			Params: w.Keys.Params, Result: w.Keys.Setup, DKG: w.Keys.DKG,
		}
		sealer, err := n.sealer()
		if err != nil {
			return err
		}
		if err := saveKeyState(n.cfg.DataDir, sealer, st); err != nil {
			return err
		}
		n.mu.Lock()
		n.state = st
		n.mu.Unlock()
		n.log.Info("setup complete", "session", sessionID, "digest", fmt.Sprintf("%x", st.Meta.Digest[:8]))
		return nil
	case *session.ModelBlob:
		blobPath, metaPath := n.modelPaths(w.Info.GetHeader().GetName())
		if err := os.MkdirAll(filepath.Dir(blobPath), 0o700); err != nil {
			return fmt.Errorf("store model: %w", err)
		}
		if err := writeFileAtomic(blobPath, w.Model, 0o600); err != nil {
			return fmt.Errorf("store model: %w", err)
		}
		mb, err := protojson.Marshal(w.Info)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(metaPath, mb, 0o600); err != nil {
			return fmt.Errorf("store model: %w", err)
		}
		n.log.Info("encrypted model stored", "session", sessionID, "model", w.Info.GetHeader().GetName(), "owner", w.Info.GetOwner(), "bytes", len(w.Model))
		return nil
	case *session.Predictions:
		var buf bytes.Buffer
		buf.WriteString("row,prediction\n")
		for j, v := range w.Values {
			buf.WriteString(strconv.Itoa(j + 1))
			buf.WriteByte(',')
			buf.WriteString(strconv.FormatFloat(v, 'g', 8, 64))
			buf.WriteByte('\n')
		}
		if err := writeFileAtomic(filepath.Join(n.cfg.DataDir, w.File), buf.Bytes(), 0o600); err != nil {
			return fmt.Errorf("write predictions: %w", err)
		}
		return nil
	}
	return fmt.Errorf("store: unknown %T", what)
}
