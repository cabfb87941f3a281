package analyst

import (
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protojson"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
)

// Results is the analyst's store of the results it received, kept to audit
// them later: DataDir/results/SESSION.json holds the result's metadata and
// receipt, SESSION.ct the result ciphertext as received.
type Results struct {
	DataDir string
}

func (r Results) paths(session string) (meta, ct string) {
	dir := filepath.Join(r.DataDir, "results")
	return filepath.Join(dir, session+".json"), filepath.Join(dir, session+".ct")
}

// Save keeps a result under its session id.
func (r Results) Save(meta *synodv1.ResultMetadata, ct []byte) error {
	metaPath, ctPath := r.paths(meta.GetSession())
	if err := os.MkdirAll(filepath.Dir(metaPath), 0o700); err != nil {
		return err
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(meta)
	if err != nil {
		return err
	}
	if err := os.WriteFile(ctPath, ct, 0o600); err != nil {
		return err
	}
	return os.WriteFile(metaPath, b, 0o600)
}

// Load reads the result of a session.
func (r Results) Load(session string) (*synodv1.ResultMetadata, []byte, error) {
	metaPath, ctPath := r.paths(session)
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return nil, nil, fmt.Errorf("no result of session %s here: %w", session, err)
	}
	meta := &synodv1.ResultMetadata{}
	if err := protojson.Unmarshal(b, meta); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", metaPath, err)
	}
	ct, err := os.ReadFile(ctPath)
	if err != nil {
		return nil, nil, err
	}
	return meta, ct, nil
}
