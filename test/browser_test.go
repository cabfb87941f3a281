//go:build browser

// The audit page in a real browser: Chromium, driven through chromedriver's
// W3C WebDriver HTTP API. Built only with -tags browser (make
// test-browser), as it needs Debian's chromium and chromium-driver.

package test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// browserPaths are Chromium and its driver: Debian's, unless
// SYNOD_CHROMIUM and SYNOD_CHROMEDRIVER say otherwise.
func browserPaths(t *testing.T) (chromium, driver string) {
	chromium, driver = os.Getenv("SYNOD_CHROMIUM"), os.Getenv("SYNOD_CHROMEDRIVER")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if driver == "" {
		driver = "/usr/bin/chromedriver"
	}
	for _, p := range []string{chromium, driver} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: the browser tests need Chromium and chromedriver (apt-get install chromium chromium-driver)", err)
		}
	}
	return chromium, driver
}

// TestAuditPageInBrowser: a 3-party consortium runs a query; on the audit
// page served by mpcctl, the browser goes from the list to that session,
// sees what the chain alone proves, uploads the analyst's result and sees
// every check ok, then uploads the result with one byte flipped and sees
// the result hash FAIL while every other check stays ok.
func TestAuditPageInBrowser(t *testing.T) {
	chromium, driverBin := browserPaths(t)
	shots := os.Getenv("SYNOD_BROWSER_SHOTS") // keep the screenshots there
	if shots == "" {
		shots = t.TempDir()
	}

	c := newCluster(t, 3, 2, "")
	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	q, err := c.query(append(demoQuery, "--epsilon", "1")...)
	if err != nil {
		t.Fatal(err)
	}
	session := q.Session
	pageURL := startAuditPage(t, c)

	d := startWebDriver(t, chromium, driverBin)
	d.call("POST", "/window/rect", map[string]any{"width": 1400, "height": 1200}, nil)

	// The list: the session's row, then a click to it.
	d.navigate(pageURL)
	var row []string
	for _, td := range d.findAll("xpath", fmt.Sprintf(`//tr[.//a[@href="/session/%s"]]/td`, session)) {
		row = append(row, d.text(td))
	}
	// time, session, kind, analyst, approved by, contributors, outcome, ε, height
	if len(row) != 9 || row[1] != session || row[2] != "query" || row[3] != "analyst" || !strings.HasPrefix(row[4], "party-") ||
		row[5] != "party-1, party-2, party-3" || row[6] != "released" || row[7] != "1" || !strings.HasSuffix(row[0], "UTC") {
		t.Errorf("list row of %s: %q", session, row)
	}
	d.screenshot(filepath.Join(shots, "audit-list.png"))
	d.click(d.find("css selector", fmt.Sprintf(`a[href="/session/%s"]`, session)))
	if got := d.url(); got != pageURL+"session/"+session {
		t.Fatalf("after the click the browser is at %s", got)
	}

	// What the chain alone proves; the receipt's and the result's checks
	// wait for the result.
	needsResult := map[string]bool{"local result": true, "receipt height": true, "receipt proof": true, "result hash": true}
	checks := d.checks()
	if len(checks) != len(auditChecks) {
		t.Fatalf("%d checks on the page, want %d: %v", len(checks), len(auditChecks), checks)
	}
	for _, name := range auditChecks {
		want := "ok"
		if needsResult[name] {
			want = "skip"
		}
		if checks[name] != want {
			t.Errorf("chain only: check %q is %q, want %q", name, checks[name], want)
		}
	}
	// The stylesheet applied under the page's CSP.
	if bg := d.css(d.find("css selector", ".badge.ok"), "background-color"); bg != "rgba(227, 244, 230, 1)" && bg != "rgb(227, 244, 230)" {
		t.Errorf("an ok badge's background is %q: the stylesheet did not apply", bg)
	}
	d.screenshot(filepath.Join(shots, "audit-session-chain.png"))

	// The analyst's result, as the result store keeps it.
	results := filepath.Join(c.dir, "analyst", "data", "results")
	metaPath, ctPath := filepath.Join(results, session+".json"), filepath.Join(results, session+".ct")
	upload := func(meta, ct string) map[string]string {
		d.sendKeys(d.find("css selector", "input#meta"), meta)
		d.sendKeys(d.find("css selector", "input#ct"), ct)
		d.click(d.find("css selector", "button#verify"))
		d.waitText("#mode", "Verified with the uploaded result")
		return d.checks()
	}
	checks = upload(metaPath, ctPath)
	for _, name := range auditChecks {
		if checks[name] != "ok" {
			t.Errorf("with the result: check %q is %q, want ok", name, checks[name])
		}
	}
	if v := d.text(d.find("css selector", "#verdict")); v != fmt.Sprintf("verified: all %d checks ok", len(auditChecks)) {
		t.Errorf("verdict %q", v)
	}
	d.screenshot(filepath.Join(shots, "audit-session-verified.png"))

	// One byte of the held result flipped: the result hash fails, nothing
	// else.
	ct, err := os.ReadFile(ctPath)
	if err != nil {
		t.Fatal(err)
	}
	ct[len(ct)/2] ^= 1
	tampered := filepath.Join(t.TempDir(), session+".ct")
	if err := os.WriteFile(tampered, ct, 0o600); err != nil {
		t.Fatal(err)
	}
	d.navigate(pageURL + "session/" + session)
	checks = upload(metaPath, tampered)
	for _, name := range auditChecks {
		want := "ok"
		if name == "result hash" {
			want = "FAIL"
		}
		if checks[name] != want {
			t.Errorf("tampered result: check %q is %q, want %q", name, checks[name], want)
		}
	}
	if v := d.text(d.find("css selector", "#verdict")); !strings.Contains(v, "1 of 10 checks FAIL") {
		t.Errorf("tampered result: verdict %q", v)
	}
	d.screenshot(filepath.Join(shots, "audit-session-tampered.png"))
	t.Logf("screenshots in %s", shots)
}

// startAuditPage runs `mpcctl audit serve` on a free port and returns the
// page's URL (ending in /).
func startAuditPage(t *testing.T, c *cluster) string {
	cmd := exec.Command(filepath.Join(binDir, "mpcctl"), "--config", c.analyst, "audit", "serve", "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	log := new(logBuffer)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopProcess(t, "audit page", cmd, log)
		if t.Failed() {
			t.Logf("---- audit page log ----\n%s", log.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		url, found := strings.CutPrefix(l, "audit page at ")
		if !ok || !found {
			t.Fatalf("mpcctl audit serve printed %q\n%s", l, log.String())
		}
		return url
	case <-time.After(30 * time.Second):
		t.Fatalf("mpcctl audit serve printed no address in 30s\n%s", log.String())
	}
	return ""
}

// webDriver is one browser session of a chromedriver process, spoken to
// in W3C WebDriver over plain HTTP.
type webDriver struct {
	t       *testing.T
	base    string // chromedriver's URL
	session string
}

// elementKey is the W3C name of an element reference's field.
const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// startWebDriver starts chromedriver on a free loopback port and a
// headless Chromium session in a fresh profile, both ended by t's
// cleanup.
func startWebDriver(t *testing.T, chromium, driverBin string) *webDriver {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(driverBin, fmt.Sprintf("--port=%d", port))
	log := new(logBuffer)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("---- chromedriver log ----\n%s", log.String())
		}
	})
	d := &webDriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var status struct {
			Ready bool `json:"ready"`
		}
		if err := d.request("GET", "/status", nil, &status); err == nil && status.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver not ready after 30s:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// This machine may have no network: nothing in the browser may try
	// to reach one.
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":        "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": args},
	}}}
	if err := d.request("POST", "/session", caps, &created); err != nil {
		t.Fatalf("start a browser session: %v\n%s", err, log.String())
	}
	d.session = created.SessionID
	t.Cleanup(func() { d.request("DELETE", "/session/"+d.session, nil, nil) })
	return d
}

// request sends one WebDriver command and decodes its value into out.
func (d *webDriver) request(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s %s: status %d: %w", method, path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		json.Unmarshal(env.Value, &e)
		return fmt.Errorf("%s %s: %s: %s", method, path, e.Error, e.Message)
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}

// call runs a command of the session and fails the test on error.
func (d *webDriver) call(method, path string, in, out any) {
	d.t.Helper()
	if err := d.request(method, "/session/"+d.session+path, in, out); err != nil {
		d.t.Fatal(err)
	}
}

func (d *webDriver) navigate(url string) {
	d.t.Helper()
	d.call("POST", "/url", map[string]string{"url": url}, nil)
}

func (d *webDriver) url() string {
	d.t.Helper()
	var u string
	d.call("GET", "/url", nil, &u)
	return u
}

// find returns the element that a locator strategy ("css selector",
// "xpath") and selector find.
func (d *webDriver) find(using, value string) string {
	d.t.Helper()
	var el map[string]string
	d.call("POST", "/element", map[string]string{"using": using, "value": value}, &el)
	return el[elementKey]
}

func (d *webDriver) findAll(using, value string) []string {
	d.t.Helper()
	var els []map[string]string
	d.call("POST", "/elements", map[string]string{"using": using, "value": value}, &els)
	ids := make([]string, len(els))
	for i, el := range els {
		ids[i] = el[elementKey]
	}
	return ids
}

func (d *webDriver) text(el string) string {
	d.t.Helper()
	var s string
	d.call("GET", "/element/"+el+"/text", nil, &s)
	return s
}

func (d *webDriver) css(el, property string) string {
	d.t.Helper()
	var s string
	d.call("GET", "/element/"+el+"/css/"+property, nil, &s)
	return s
}

func (d *webDriver) click(el string) {
	d.t.Helper()
	d.call("POST", "/element/"+el+"/click", map[string]any{}, nil)
}

// sendKeys types into an element; into a file input, it chooses the file.
func (d *webDriver) sendKeys(el, text string) {
	d.t.Helper()
	d.call("POST", "/element/"+el+"/value", map[string]string{"text": text}, nil)
}

// waitText waits until the element css selects shows text: a click
// that submits a form may return before the answer is in.
func (d *webDriver) waitText(css, text string) {
	d.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		var el map[string]string
		if d.request("POST", "/session/"+d.session+"/element", map[string]string{"using": "css selector", "value": css}, &el) == nil &&
			d.request("GET", "/session/"+d.session+"/element/"+el[elementKey]+"/text", nil, &last) == nil &&
			strings.Contains(last, text) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	d.t.Fatalf("%s shows %q, not %q, after 3 minutes", css, last, text)
}

// checks reads the page's checks: name -> status as shown (ok, FAIL,
// skip).
func (d *webDriver) checks() map[string]string {
	d.t.Helper()
	names := d.findAll("css selector", "tr.check td.name")
	marks := d.findAll("css selector", "tr.check td.status")
	if len(names) != len(marks) {
		d.t.Fatalf("%d check names, %d statuses", len(names), len(marks))
	}
	out := map[string]string{}
	for i := range names {
		out[d.text(names[i])] = d.text(marks[i])
	}
	return out
}

// screenshot saves the viewport as a PNG, checked to decode.
func (d *webDriver) screenshot(path string) {
	d.t.Helper()
	var b64 string
	d.call("GET", "/screenshot", nil, &b64)
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		d.t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() < 100 || img.Bounds().Dy() < 100 {
		d.t.Fatalf("screenshot: %v (%v)", err, img)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		d.t.Fatal(err)
	}
}
