// Package test holds Synod's end-to-end tests: they build mpcnode and
// mpcctl, write a consortium with `mpcctl consortium init`, start every party
// as its own process on loopback and drive it with mpcctl, as a user would.
package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "synod-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	// SYNOD_TEST_RACE=1 builds the binaries with the race detector, so the
	// node runtime's concurrency is checked under real traffic.
	race := os.Getenv("SYNOD_TEST_RACE") == "1"
	for _, b := range []struct {
		out  string
		args []string
	}{
		{dir + "/", []string{"./cmd/mpcnode", "./cmd/mpcctl"}},
		{dir + "/mpcnode-faulty", []string{"-tags", "faultinject", "./cmd/mpcnode"}},
	} {
		args := []string{"build", "-o", b.out}
		if race {
			args = append(args, "-race")
		}
		build := exec.Command("go", append(args, b.args...)...)
		build.Dir = repoRoot()
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// cluster is a consortium whose parties run as separate mpcnode processes.
type cluster struct {
	t       testing.TB
	dir     string
	n       int
	nodes   []*exec.Cmd
	logs    []*logBuffer
	analyst string
}

// logBuffer collects a process's output; os/exec writes it from its own
// goroutine while the test reads it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeBasePort finds a base port whose three ranges of n ports (gRPC,
// chain p2p at +100, chain RPC at +200) are free on loopback.
func freeBasePort(t testing.TB, n int) int {
	for try := 0; try < 50; try++ {
		// Below the kernel's ephemeral range (32768 and up), which
		// outgoing connections draw their local ports from.
		base := 10000 + rand.IntN(22000)
		ok := true
		for _, off := range []int{0, 100, 200} {
			for i := 0; i < n && ok; i++ {
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off+i))
				if err != nil {
					ok = false
					continue
				}
				l.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func newCluster(t testing.TB, n, threshold int, params string) *cluster {
	t.Helper()
	c := initCluster(t, n, threshold, 0, params)
	for i := 1; i <= n; i++ {
		c.start(i, "mpcnode")
	}
	t.Cleanup(c.stopAll)
	c.waitReachable(n)
	return c
}

// exited reports whether party i+1's process has ended (without reaping it).
func (c *cluster) exited(i int) bool {
	return c.nodes[i].Process.Signal(syscall.Signal(0)) != nil
}

func (c *cluster) partyConfig(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("party-%d.yaml", i))
}

// start runs party i with the named binary and extra environment.
// initCluster writes a consortium of n parties and k validator-only
// members with the sample data, and starts nothing.
func initCluster(t testing.TB, n, threshold, k int, params string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), n: n}
	c.analyst = filepath.Join(c.dir, "analyst.yaml")
	args := []string{"consortium", "init", "--dir", c.dir, "--parties", fmt.Sprint(n), "--threshold", fmt.Sprint(threshold),
		"--validators", fmt.Sprint(k), "--base-port", fmt.Sprint(freeBasePort(t, n+k)), "--fast-blocks",
		"--dataset", "patients=" + filepath.Join(repoRoot(), "configs/sample/patients-party-{i}.csv")}
	if params != "" {
		args = append(args, "--parameters", params)
	}
	if out, err := c.ctl(args...); err != nil {
		t.Fatalf("consortium init: %v\n%s", err, out)
	}
	return c
}

// startProcess starts binary (in binDir) with a config, its output
// collected in a log buffer.
func startProcess(t testing.TB, name, binary, config string, env ...string) (*exec.Cmd, *logBuffer) {
	cmd := exec.Command(filepath.Join(binDir, binary), "--config", config)
	cmd.Env = append(os.Environ(), env...)
	log := new(logBuffer)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return cmd, log
}

func (c *cluster) start(i int, binary string, env ...string) {
	cmd, log := startProcess(c.t, fmt.Sprintf("party-%d", i), binary, c.partyConfig(i), env...)
	for len(c.nodes) < i {
		c.nodes = append(c.nodes, nil)
		c.logs = append(c.logs, nil)
	}
	c.nodes[i-1], c.logs[i-1] = cmd, log
}

// stop ends party i's process.
func (c *cluster) stop(i int) {
	if c.nodes[i-1] == nil {
		return
	}
	stopProcess(c.t, fmt.Sprintf("party-%d", i), c.nodes[i-1], c.logs[i-1])
	c.nodes[i-1] = nil
}

// stopProcess interrupts a node process, kills it if it has not exited
// within 10 s, and fails the test if its log shows a panic or a data race.
func stopProcess(t testing.TB, name string, cmd *exec.Cmd, log *logBuffer) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	if strings.Contains(log.String(), "WARNING: DATA RACE") {
		t.Errorf("%s: the race detector reported a data race", name)
	}
	if strings.Contains(log.String(), "panic:") {
		t.Errorf("%s panicked", name)
	}
}

func (c *cluster) stopAll() {
	for i := range c.nodes {
		c.stop(i + 1)
	}
	if c.t.Failed() {
		for i, l := range c.logs {
			if l != nil {
				c.t.Logf("---- party-%d log ----\n%s", i+1, l.String())
			}
		}
	}
}

// ctl runs mpcctl with the analyst config and returns its stdout (and
// stderr on failure).
func (c *cluster) ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "mpcctl"), append([]string{"--config", c.analyst}, args...)...)
	cmd.Dir = repoRoot()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

type partyJSON struct {
	ID        string `json:"id"`
	Reachable bool   `json:"reachable"`
	SetupDone bool   `json:"setup_done"`
	BytesSent uint64 `json:"bytes_sent,string"`
}

func (c *cluster) parties() ([]partyJSON, error) {
	out, err := c.ctl("parties", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var resp struct {
		Parties []partyJSON `json:"parties"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return nil, fmt.Errorf("parties output %q: %w", out, err)
	}
	return resp.Parties, nil
}

func (c *cluster) waitReachable(want int) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ps, err := c.parties()
		up := 0
		for _, p := range ps {
			if p.Reachable {
				up++
			}
		}
		if err == nil && up >= want {
			return
		}
		for i, cmd := range c.nodes {
			if cmd != nil && cmd.ProcessState == nil && c.exited(i) {
				c.t.Fatalf("party-%d exited:\n%s", i+1, c.logs[i].String())
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("only %d of %d parties reachable after 60s (last error: %v)", up, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type cell struct {
	Group      map[string]float64 `json:"group"`
	Name       string             `json:"name"`
	Value      float64            `json:"value"`
	Suppressed bool               `json:"suppressed"`
}

type queryJSON struct {
	Session      string    `json:"session"`
	Contributors []string  `json:"contributors"`
	KeySwitchers []string  `json:"key_switchers"`
	Precision    float64   `json:"precision"`
	Results      []cell    `json:"results"`
	Seconds      float64   `json:"session_seconds"`
	Ledger       float64   `json:"ledger_seconds"`
	MinCohort    int       `json:"min_cohort"`
	Suppressed   int       `json:"suppressed"`
	NoiseScales  []float64 `json:"noise_scales"`
	Receipt      *struct {
		Height int64  `json:"height"`
		TxHash string `json:"tx_hash"`
	} `json:"receipt"`
}

func (c *cluster) query(args ...string) (*queryJSON, error) {
	out, err := c.ctl(append([]string{"query", "-o", "json"}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
	}
	var q queryJSON
	if err := json.Unmarshal([]byte(out), &q); err != nil {
		return nil, fmt.Errorf("query output %q: %w", out, err)
	}
	return &q, nil
}

// validatorSet is the validator-only members of a cluster (validator-k
// for k = 1..len(procs)), each its own mpcnode process.
type validatorSet struct {
	c     *cluster
	procs []*exec.Cmd
	logs  []*logBuffer
}

// newClusterWithValidators is newCluster with `--validators k`: the k
// validator-only members are started first, then the n parties; it
// returns once the validators' chain RPC answers and every party is
// reachable.
func newClusterWithValidators(t testing.TB, n, threshold, k int, params string) (*cluster, *validatorSet) {
	t.Helper()
	c := initCluster(t, n, threshold, k, params)
	vs := &validatorSet{c: c, procs: make([]*exec.Cmd, k), logs: make([]*logBuffer, k)}
	for i := 1; i <= k; i++ {
		vs.start(i)
	}
	t.Cleanup(vs.stopAll) // after the parties' cleanup (LIFO)
	for i := 1; i <= n; i++ {
		c.start(i, "mpcnode")
	}
	t.Cleanup(c.stopAll)
	vs.waitUp()
	c.waitReachable(n)
	return c, vs
}

func (vs *validatorSet) config(i int) string {
	return filepath.Join(vs.c.dir, fmt.Sprintf("validator-%d.yaml", i))
}

// start runs validator-only member i.
func (vs *validatorSet) start(i int) {
	vs.procs[i-1], vs.logs[i-1] = startProcess(vs.c.t, fmt.Sprintf("validator-%d", i), "mpcnode", vs.config(i))
}

// stop ends validator-only member i's process.
func (vs *validatorSet) stop(i int) {
	if vs.procs[i-1] == nil {
		return
	}
	stopProcess(vs.c.t, fmt.Sprintf("validator-%d", i), vs.procs[i-1], vs.logs[i-1])
	vs.procs[i-1] = nil
}

func (vs *validatorSet) stopAll() {
	for i := range vs.procs {
		vs.stop(i + 1)
	}
	if vs.c.t.Failed() {
		for i, l := range vs.logs {
			if l != nil {
				vs.c.t.Logf("---- validator-%d log ----\n%s", i+1, l.String())
			}
		}
	}
}

// waitUp waits until every running validator-only member's chain RPC
// answers /health (a validator serves no gRPC).
func (vs *validatorSet) waitUp() {
	deadline := time.Now().Add(60 * time.Second)
	for i, cmd := range vs.procs {
		if cmd == nil {
			continue
		}
		url := "http://" + readYAMLKey(vs.c.t, vs.config(i+1), "rpc_listen") + "/health"
		for {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if cmd.Process.Signal(syscall.Signal(0)) != nil {
				vs.c.t.Fatalf("validator-%d exited:\n%s", i+1, vs.logs[i].String())
			}
			if time.Now().After(deadline) {
				vs.c.t.Fatalf("validator-%d: chain RPC %s not up after 60s (last error: %v)", i+1, url, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// readYAMLKey returns the value of the first line "key: value" of a
// config file, at any indentation.
func readYAMLKey(t testing.TB, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == key {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	t.Fatalf("%s: no key %q", path, key)
	return ""
}
