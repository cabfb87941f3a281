package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/keystore"
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/parties/transport"
)

// plaintext computes the same query in the clear over the given parties' sample data.
func plaintext(t *testing.T, parties []string, spec *synodv1.QuerySpec) []query.Cell {
	t.Helper()
	var total []float64
	for _, p := range parties {
		path := filepath.Join(repoRoot(), "configs/sample", "patients-"+p+".csv")
		tab, err := datasource.LoadCSV("patients", path)
		if err != nil {
			t.Fatal(err)
		}
		local, err := query.Local(tab, spec)
		if err != nil {
			t.Fatal(err)
		}
		if total == nil {
			total = make([]float64, len(local))
		}
		for i, v := range local {
			total[i] += v
		}
	}
	cells, err := query.Finish(spec, total)
	if err != nil {
		t.Fatal(err)
	}
	return cells
}

// checkAgainstPlaintext compares an encrypted result with the plaintext:
// counts exactly, sums within the promised precision, means within the
// promised precision divided by the count.
func checkAgainstPlaintext(t *testing.T, got *queryJSON, spec *synodv1.QuerySpec) {
	t.Helper()
	want := plaintext(t, got.Contributors, spec)
	if len(got.Results) != len(want) {
		t.Fatalf("got %d results, want %d", len(got.Results), len(want))
	}
	if got.Precision <= 0 || got.Precision > 0.1 {
		t.Fatalf("promised precision %g is not a useful bound", got.Precision)
	}
	for i, w := range want {
		g := got.Results[i]
		if g.Name != w.Name {
			t.Fatalf("result %d is %s, want %s", i, g.Name, w.Name)
		}
		tol := got.Precision
		switch {
		case strings.HasPrefix(w.Name, "COUNT"):
			tol = 0
		case strings.HasPrefix(w.Name, "MEAN"):
			tol = 2 * got.Precision / want[0].Value // count is exact; the sum carries the error
		}
		if d := math.Abs(g.Value - w.Value); d > tol {
			t.Errorf("%s = %v, plaintext %v: error %g exceeds tolerance %g", w.Name, g.Value, w.Value, d, tol)
		} else {
			t.Logf("%s = %.6f (plaintext %.6f, error %.2g, tolerance %.2g)", w.Name, g.Value, w.Value, d, tol)
		}
	}
}

var demoQuery = []string{"--dataset", "patients", "--agg", "count", "--agg", "mean:age", "--agg", "sum:diabetic", "--agg", "mean:bmi", "--where", "age>=40"}

func demoSpec() *synodv1.QuerySpec {
	return &synodv1.QuerySpec{
		Dataset: "patients",
		Aggregates: []*synodv1.Aggregate{
			{Func: synodv1.Aggregate_COUNT},
			{Func: synodv1.Aggregate_MEAN, Column: "age"},
			{Func: synodv1.Aggregate_SUM, Column: "diabetic"},
			{Func: synodv1.Aggregate_MEAN, Column: "bmi"},
		},
		Filters: []*synodv1.Filter{{Column: "age", Op: synodv1.Filter_GE, Value: 40}},
	}
}

// TestConsortium runs the whole life of a 4-party, threshold-2 consortium
// (4 validators: the chain survives one down): setup, a query checked
// against plaintext, refusals, a query with one party down, and the refusal
// to release anything below the threshold.
func TestConsortium(t *testing.T) {
	c := newCluster(t, 4, 2, "")

	t.Run("query before setup is refused", func(t *testing.T) {
		_, err := c.query(demoQuery...)
		if err == nil || !strings.Contains(err.Error(), "not set up") {
			t.Fatalf("want a 'not set up' error, got %v", err)
		}
	})

	start := time.Now()
	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	t.Logf("setup took %s", time.Since(start))
	ps, err := c.parties()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if !p.SetupDone {
			t.Fatalf("%s has no setup keys after setup", p.ID)
		}
	}

	t.Run("setup twice is refused", func(t *testing.T) {
		out, err := c.ctl("setup")
		if err == nil || !strings.Contains(out, "already set up") {
			t.Fatalf("want 'already set up', got %v: %s", err, out)
		}
	})

	t.Run("secrets are sealed at rest", func(t *testing.T) {
		for i := 1; i <= 4; i++ {
			dir := filepath.Join(c.dir, "party-"+string(rune('0'+i)), "data")
			b, err := os.ReadFile(filepath.Join(dir, "setup-secret.sealed"))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := os.ReadFile(filepath.Join(dir, "setup-public.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < 1024 || len(pub) < 1024 {
				t.Fatalf("party-%d: implausible key files (%d, %d bytes)", i, len(b), len(pub))
			}
		}
		// No private key anywhere in the consortium directory in the
		// clear: identity keys and every *.sealed file are keystore files,
		// and no file (chain state included) holds a PEM private key or a
		// CometBFT key file.
		sealed := 0
		err := filepath.WalkDir(c.dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if strings.HasSuffix(path, ".sealed") || d.Name() == "identity.key" {
				if !bytes.HasPrefix(b, []byte(keystore.Magic)) {
					t.Errorf("%s: not a keystore file", path)
				}
				sealed++
			}
			if bytes.Contains(b, []byte("PRIVATE KEY")) || bytes.Contains(b, []byte(`"priv_key"`)) {
				t.Errorf("%s: holds a private key in the clear", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Per party: identity, TLS, chain node and validator keys, setup
		// secrets; the analyst's identity and TLS keys; the CA key.
		if want := 4*5 + 2 + 1; sealed < want {
			t.Errorf("%d sealed files, want at least %d", sealed, want)
		}
	})

	var firstSession string
	t.Run("query matches plaintext", func(t *testing.T) {
		q, err := c.query(demoQuery...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.Contributors, []string{"party-1", "party-2", "party-3", "party-4"}) {
			t.Fatalf("contributors %v, want all four", q.Contributors)
		}
		if len(q.KeySwitchers) != 2 {
			t.Fatalf("key switched by %v, want 2 parties", q.KeySwitchers)
		}
		checkAgainstPlaintext(t, q, demoSpec())
		if q.Receipt == nil || q.Receipt.Height == 0 {
			t.Fatalf("result without a receipt: %+v", q)
		}
		firstSession = q.Session
	})

	t.Run("SQL group by with CORR and a histogram matches plaintext", func(t *testing.T) {
		testSQLGroupBy(t, c)
	})

	t.Run("audit", func(t *testing.T) { testAudit(t, c, firstSession) })
	t.Run("chain refuses foreign transactions", func(t *testing.T) { testForeignTxs(t, c) })

	t.Run("unknown dataset names the party and dataset", func(t *testing.T) {
		_, err := c.query("--dataset", "nosuch", "--agg", "count")
		if err == nil || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "party-") {
			t.Fatalf("want an error naming the dataset and a party, got %v", err)
		}
	})

	t.Run("unknown column names the column", func(t *testing.T) {
		_, err := c.query("--dataset", "patients", "--agg", "mean:weight")
		if err == nil || !strings.Contains(err.Error(), `"weight"`) {
			t.Fatalf("want an error naming the column, got %v", err)
		}
	})

	t.Run("certificate from another CA is refused", func(t *testing.T) {
		caCert, caKey, err := pki.NewCA("intruder")
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := pki.Issue(caCert, caKey, "analyst", pki.RoleAnalyst, []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		// Trust the real node (InsecureSkipVerify only on our side) so the
		// failure can come only from the node refusing our certificate.
		cfg := &tls.Config{Certificates: []tls.Certificate{pair}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
		addr := readAddress(t, c.partyConfig(1))
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = synodv1.NewAnalystClient(conn).ListParties(ctx, &synodv1.ListPartiesRequest{})
		if err == nil {
			t.Fatal("a node answered a client whose certificate is not from the consortium CA")
		}
		t.Logf("refused as expected: %v", err)
	})

	t.Run("health and reflection answer with the analyst certificate", func(t *testing.T) {
		conn, err := transport.Dial(readAddress(t, c.partyConfig(1)), "party-1", memberCredentials(t, c.dir, "analyst"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health: %v %v", h, err)
		}
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		for _, want := range []string{"synod.v1.Analyst", "synod.v1.Peer", "grpc.health.v1.Health"} {
			if !slices.Contains(names, want) {
				t.Fatalf("reflection lists %v, missing %s", names, want)
			}
		}
		// The analyst's certificate may not call the node-to-node service.
		if _, err := synodv1.NewPeerClient(conn).Ping(ctx, &synodv1.PingRequest{}); err == nil || !strings.Contains(err.Error(), "for consortium parties") {
			t.Fatalf("analyst called Peer.Ping: %v", err)
		}
	})

	t.Run("one party down: t of N still answer", func(t *testing.T) {
		c.stop(4)
		q, err := c.query(demoQuery...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.Contributors, []string{"party-1", "party-2", "party-3"}) {
			t.Fatalf("contributors %v, want party-1, party-2 and party-3", q.Contributors)
		}
		checkAgainstPlaintext(t, q, demoSpec())
		// With one validator down the chain still commits, and the
		// auditor's light client still verifies (another primary/witness).
		if out, err := c.auditVerify(q.Session); err != nil {
			t.Fatalf("audit with one node down: %v\n%s", err, out)
		}
	})

	t.Run("below the threshold nothing is released", func(t *testing.T) {
		c.stop(3)
		c.stop(2)
		_, err := c.query(demoQuery...)
		if err == nil || !strings.Contains(err.Error(), "threshold is 2") || !strings.Contains(err.Error(), "nothing was released") {
			t.Fatalf("want a threshold error, got %v", err)
		}
	})
}

func readAddress(t *testing.T, partyConfig string) string {
	t.Helper()
	b, err := os.ReadFile(partyConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == "listen" {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	t.Fatalf("%s has no listen address", partyConfig)
	return ""
}

// TestNodeRefusesBadConfig: a config with a missing field stops the node at
// start with an error naming the field.
func TestNodeRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "party.yaml")
	if err := os.WriteFile(cfg, []byte("id: party-1\ndata_dir: data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "mpcnode"), "--config", cfg).CombinedOutput()
	if err == nil {
		t.Fatal("mpcnode started with a config that has no listen address")
	}
	if !regexp.MustCompile(`missing required key "(listen|consortium)"`).Match(out) {
		t.Fatalf("error does not name the missing key: %s", out)
	}
}

const groupBySQL = "SELECT sex, COUNT(*), AVG(bmi), STDDEV_SAMP(systolic_bp), CORR(age, bmi), HISTOGRAM(cholesterol, 100, 150, 200, 250, 300) " +
	"FROM patients WHERE age BETWEEN 40 AND 70 AND NOT smoker = 1 GROUP BY sex IN (0, 1)"

// testSQLGroupBy runs groupBySQL through the nodes and checks it against a
// float64 two-pass computation over the sample CSVs, each statistic within
// the error bound the promised precision implies for it.
func testSQLGroupBy(t *testing.T, c *cluster) {
	q, err := c.query(groupBySQL)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := query.CompileSQL(groupBySQL)
	if err != nil {
		t.Fatal(err)
	}
	// The plaintext, row by row.
	type acc struct{ bmi, sbp, age []float64 }
	groups := map[float64]*acc{0: {}, 1: {}}
	edges := []float64{100, 150, 200, 250, 300}
	hist := map[float64][]float64{0: make([]float64, 4), 1: make([]float64, 4)}
	var sums []float64 // the slots, for the error bounds
	for _, p := range q.Contributors {
		tab, err := datasource.LoadCSV("patients", filepath.Join(repoRoot(), "configs/sample", "patients-"+p+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		col := func(name string) []float64 {
			v, err := tab.Column(name)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		age, sex, bmi, sbp, chol, smoker := col("age"), col("sex"), col("bmi"), col("systolic_bp"), col("cholesterol"), col("smoker")
		for r := 0; r < tab.Rows; r++ {
			if age[r] < 40 || age[r] > 70 || smoker[r] == 1 || (sex[r] != 0 && sex[r] != 1) {
				continue
			}
			g := groups[sex[r]]
			g.bmi, g.sbp, g.age = append(g.bmi, bmi[r]), append(g.sbp, sbp[r]), append(g.age, age[r])
			for i := 0; i+1 < len(edges); i++ {
				if edges[i] <= chol[r] && chol[r] < edges[i+1] {
					hist[sex[r]][i]++
				}
			}
		}
		local, err := query.Local(tab, spec)
		if err != nil {
			t.Fatal(err)
		}
		if sums == nil {
			sums = make([]float64, len(local))
		}
		for i, v := range local {
			sums[i] += v
		}
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	covar := func(xs, ys []float64) float64 {
		mx, my, s := mean(xs), mean(ys), 0.0
		for i := range xs {
			s += (xs[i] - mx) * (ys[i] - my)
		}
		return s / float64(len(xs)-1)
	}
	var want []cell
	for _, sex := range []float64{0, 1} {
		g := groups[sex]
		want = append(want,
			cell{Name: "COUNT(*)", Value: float64(len(g.bmi))},
			cell{Name: "MEAN(bmi)", Value: mean(g.bmi)},
			cell{Name: "STDDEV_SAMP(systolic_bp)", Value: math.Sqrt(covar(g.sbp, g.sbp))},
			cell{Name: "CORR(age, bmi)", Value: covar(g.age, g.bmi) / math.Sqrt(covar(g.age, g.age)*covar(g.bmi, g.bmi))})
		for i := 0; i+1 < len(edges); i++ {
			want = append(want, cell{Name: fmt.Sprintf("HISTOGRAM(cholesterol)[%g,%g)", edges[i], edges[i+1]), Value: hist[sex][i]})
		}
	}
	bounds, err := query.ErrorBounds(spec, sums, q.Precision)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Results) != len(want) || len(bounds) != len(want) {
		t.Fatalf("got %d results (%d bounds), want %d", len(q.Results), len(bounds), len(want))
	}
	for i, w := range want {
		g := q.Results[i]
		if g.Name != w.Name {
			t.Fatalf("result %d is %s, want %s", i, g.Name, w.Name)
		}
		// The bound covers the encryption noise; 1e-9 covers float64
		// summation order.
		tol := bounds[i] + 1e-9*math.Abs(w.Value)
		if d := math.Abs(g.Value - w.Value); d > tol || math.IsNaN(d) {
			t.Errorf("group %d %s = %v, plaintext %v: error %g exceeds tolerance %g", i/8, w.Name, g.Value, w.Value, d, tol)
		} else {
			t.Logf("group %d %s = %.6f (plaintext %.6f, error %.2g, tolerance %.2g)", i/8, w.Name, g.Value, w.Value, d, tol)
		}
	}
}
