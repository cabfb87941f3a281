package datasource

import (
	"context"
	"errors"
	"fmt"
)

// Source is where a party's copy of a dataset lives: a CSV file or a
// PostgreSQL database (exactly one of the two).
type Source struct {
	CSV      string
	Postgres *Postgres
}

// Describe names the source in messages (never with a connection string).
func (s Source) Describe() string {
	if s.Postgres != nil {
		return s.Postgres.Describe()
	}
	return "csv " + s.CSV
}

// Load loads dataset name from its source.
func Load(ctx context.Context, name string, s Source) (*Table, error) {
	switch {
	case s.CSV != "" && s.Postgres != nil:
		return nil, fmt.Errorf("dataset %s: both a CSV file and a PostgreSQL source are given; choose one", name)
	case s.Postgres != nil:
		return LoadPostgres(ctx, name, *s.Postgres)
	case s.CSV != "":
		return LoadCSV(name, s.CSV)
	}
	return nil, errors.New("dataset " + name + ": no source (csv or postgres)")
}
