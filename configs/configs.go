// Package configs ships the example consortium's files with the binaries:
// the consortium schema that `mpcctl consortium init` writes by default.
package configs

import _ "embed"

// Schema is configs/schema.yaml, the schema of the shipped sample data.
//
//go:embed schema.yaml
var Schema []byte
