package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
)

func TestWriteRowsJSON(t *testing.T) {
	var buf bytes.Buffer
	rows := [][]string{{"party", "address"}, {"party-1", "127.0.0.1:7401"}, {"party-2", "127.0.0.1:7402"}}
	if err := writeRows(&buf, "json", rows); err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	if len(got) != 2 || got[1]["party"] != "party-2" || got[0]["address"] != "127.0.0.1:7401" {
		t.Fatalf("%+v", got)
	}
	buf.Reset()
	if err := writeRows(&buf, "json", rows[:1]); err != nil || strings.TrimSpace(buf.String()) != "[]" {
		t.Fatalf("no rows: %q %v", buf.String(), err)
	}
	if err := writeRows(&buf, "xml", rows); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestWriteModels(t *testing.T) {
	models := []*synodv1.ModelInfo{
		{Header: &synodv1.ModelHeader{Name: "logreg", Parties: []string{"party-1"}}, Owner: "analyst", Digest: []byte{0xab}, Bytes: 42},
		{Header: &synodv1.ModelHeader{Name: "mlp"}, Owner: "analyst", Digest: []byte{0xcd}, Bytes: 7},
	}
	var buf bytes.Buffer
	if err := writeModels(&buf, "json", models); err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Name    string   `json:"name"`
		Digest  string   `json:"digest"`
		Bytes   uint64   `json:"bytes"`
		Parties []string `json:"parties"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	if len(got) != 2 || got[0].Name != "logreg" || got[0].Digest != "ab" || got[0].Bytes != 42 || len(got[0].Parties) != 1 || got[1].Parties == nil {
		t.Fatalf("%+v", got)
	}
	for _, format := range []string{"table", "csv"} {
		buf.Reset()
		if err := writeModels(&buf, format, models); err != nil || !strings.Contains(buf.String(), "logreg") || !strings.Contains(buf.String(), "all") {
			t.Fatalf("%s: %q %v", format, buf.String(), err)
		}
	}
}
