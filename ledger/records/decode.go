package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Record bodies come from the chain: signed by a consortium member, but
// written by software of any version, and by a member that may misbehave.
// A reader relies on the fields it uses being there; encoding/json alone
// would turn a missing field into its zero value, and a check far from the
// decoding would then fail with a misleading reason (an approval "for ''").
// The decoders therefore refuse a body that is not a JSON object, that
// lacks a required field or has it null, or whose field has the wrong
// type, naming the field. They accept fields they do not know: later
// writers may add optional fields.
//
// A field is required unless its tag says omitempty: the writers have
// always written every other field. Slices may be null (encoding/json
// writes a nil slice as null).

// DecodeSetup decodes the body of a setup record.
func DecodeSetup(b []byte) (*Setup, error) { return decode[Setup]("setup", setupFields, b) }

// DecodeApproval decodes the body of an approval record.
func DecodeApproval(b []byte) (*Approval, error) {
	return decode[Approval]("approval", approvalFields, b)
}

// DecodeTranscript decodes the body of a transcript record, including the
// transcript part of a Model record.
func DecodeTranscript(b []byte) (*Transcript, error) {
	return decode[Transcript]("transcript", transcriptFields, b)
}

// DecodeModel decodes the body of a model upload or prediction transcript.
func DecodeModel(b []byte) (*Model, error) { return decode[Model]("model transcript", modelFields, b) }

// DecodeReceipt decodes the body of a receipt record.
func DecodeReceipt(b []byte) (*Receipt, error) { return decode[Receipt]("receipt", receiptFields, b) }

// DecodeOutcome decodes the body of an outcome record.
func DecodeOutcome(b []byte) (*Outcome, error) { return decode[Outcome]("outcome", outcomeFields, b) }

var (
	outcomeFields    = requiredFields(reflect.TypeFor[Outcome]())
	setupFields      = requiredFields(reflect.TypeFor[Setup]())
	approvalFields   = requiredFields(reflect.TypeFor[Approval]())
	transcriptFields = requiredFields(reflect.TypeFor[Transcript]())
	modelFields      = requiredFields(reflect.TypeFor[Model]())
	receiptFields    = requiredFields(reflect.TypeFor[Receipt]())
)

// field is a required JSON field of a record body.
type field struct {
	name     string
	nullable bool // a slice: written as null when empty
}

// requiredFields lists the JSON fields of a record type that are not
// omitempty, those of embedded structs included.
func requiredFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, hasTag := sf.Tag.Lookup("json")
		if sf.Anonymous && !hasTag && sf.Type.Kind() == reflect.Struct {
			out = append(out, requiredFields(sf.Type)...)
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if !sf.IsExported() || name == "-" || strings.Contains(","+opts+",", ",omitempty,") {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out = append(out, field{name: name, nullable: sf.Type.Kind() == reflect.Slice})
	}
	return out
}

func decode[T any](what string, required []field, b []byte) (*T, error) {
	var present map[string]json.RawMessage
	if err := json.Unmarshal(b, &present); err != nil {
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return nil, fmt.Errorf("records: %s record: not a JSON object", what)
		}
		return nil, fmt.Errorf("records: %s record: %w", what, err)
	}
	if present == nil {
		return nil, fmt.Errorf("records: %s record: not a JSON object (null)", what)
	}
	for _, f := range required {
		raw, ok := present[f.name]
		if !ok {
			return nil, fmt.Errorf("records: %s record: missing field %q", what, f.name)
		}
		if !f.nullable && string(raw) == "null" {
			return nil, fmt.Errorf("records: %s record: field %q is null", what, f.name)
		}
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("records: %s record: %w", what, err)
	}
	return v, nil
}
