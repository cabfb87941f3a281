package auditweb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/client/audit"
	"github.com/synod-mpc/synod/ledger"
)

// evil is markup in every string the chain or an upload can put on the
// page.
const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// fakeAuditor serves fixed sessions; Verify reports what the held result
// loaded, so that a test sees what the upload handed to the auditor.
type fakeAuditor struct {
	sessions []audit.Session
	mu       sync.Mutex
	chain    []string // sessions VerifyChain ran for
	verified []string // sessions Verify ran for
	held     []byte   // the ciphertext Verify loaded last
}

func (f *fakeAuditor) Sessions(context.Context) ([]audit.Session, error) { return f.sessions, nil }

func (f *fakeAuditor) VerifyChain(_ context.Context, session string) []audit.Check {
	f.mu.Lock()
	f.chain = append(f.chain, session)
	f.mu.Unlock()
	return []audit.Check{
		{Name: audit.CheckLocal, Status: audit.Skip, Detail: audit.NeedsResult},
		{Name: audit.CheckTranscript, Status: audit.OK, Detail: "tx in block " + evil},
		{Name: audit.CheckProof, Status: audit.Skip, Detail: "skipped: needs local result (skipped)", Needs: []string{audit.CheckLocal}},
		{Name: audit.CheckCertificate, Status: audit.Fail, Detail: "certificate " + evil, Needs: []string{audit.CheckTranscript}},
		{Name: audit.CheckResult, Status: audit.Skip, Detail: "skipped", Needs: []string{audit.CheckProof}},
	}
}

func (f *fakeAuditor) Verify(_ context.Context, session string, held audit.Held) []audit.Check {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verified = append(f.verified, session)
	meta, ct, err := held.Load(session)
	if err != nil {
		return []audit.Check{{Name: audit.CheckLocal, Status: audit.Fail, Detail: err.Error()}}
	}
	f.held = ct
	return []audit.Check{
		{Name: audit.CheckLocal, Status: audit.OK, Detail: "result of " + meta.GetSession()},
		{Name: audit.CheckResult, Status: audit.OK, Detail: fmt.Sprintf("SHA-256 %x", sha256.Sum256(ct))},
	}
}

const (
	querySession = "q-1"
	evilSession  = `e"/><script>x</script>`
)

func newTestServer(t *testing.T, maxUpload int64) (*httptest.Server, *fakeAuditor) {
	t.Helper()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := &fakeAuditor{sessions: []audit.Session{
		{ID: querySession, Kind: "query", Time: now, Analyst: "analyst", Signers: []string{"party-1", "party-2"},
			Contributors: []string{"party-1", "party-2", "party-3"}, Outcome: "released", Epsilon: 0.5, Height: 9,
			Query: `{"dataset": "patients"}`,
			Records: []ledger.SessionEntry{{Kind: "approval", Sender: "party-1", Height: 7, TxHash: []byte{0xab}},
				{Kind: "transcript", Sender: "party-1", Height: 9, TxHash: []byte{0xcd}}}},
		{ID: evilSession, Kind: "query " + evil, Time: now, Analyst: "analyst " + evil, Signers: []string{evil},
			Contributors: []string{evil}, Outcome: "aborted", Reason: "reason " + evil, Offender: evil, Query: evil,
			Records: []ledger.SessionEntry{{Kind: "approval", Sender: evil, Height: 3}}},
		{ID: "setup-1", Kind: "setup", Time: now, Outcome: "setup", Records: []ledger.SessionEntry{{Kind: "setup", Sender: "party-1", Height: 2}}},
	}}
	srv := httptest.NewServer(New(f, Options{Anchor: Anchor{File: "consortium.yaml", Name: "demo " + evil, ChainID: "synod-test",
		Parties: []string{"party-1", "party-2", "party-3"}, Threshold: 2}, MaxUpload: maxUpload}))
	t.Cleanup(srv.Close)
	return srv, f
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// noMarkup fails when a page carries any of evil's markup unescaped.
func noMarkup(t *testing.T, what, body string) {
	t.Helper()
	for _, bad := range []string{"<script", "<img", `"/>`} {
		if strings.Contains(body, bad) {
			t.Errorf("%s: %q unescaped in the page", what, bad)
		}
	}
}

func TestListEscapesAndLinks(t *testing.T) {
	srv, _ := newTestServer(t, 0)
	resp, body := get(t, srv.URL+"/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	noMarkup(t, "list", body)
	for _, want := range []string{
		`&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`, // escaped, not dropped
		`href="/session/q-1"`,
		`href="/session/e%22%2F%3E%3Cscript%3Ex%3C%2Fscript%3E"`, // the id as one path segment
		"2026-03-01 12:00:00 UTC", "released", "party-1, party-2, party-3", "0.5",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	checkHeaders(t, resp)
}

func checkHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q allows scripts or inline code", csp)
	}
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

// The page references nothing outside itself: no absolute URL in any
// src or href, the stylesheet served here.
func TestNoExternalResources(t *testing.T) {
	srv, _ := newTestServer(t, 0)
	for _, path := range []string{"/", "/session/q-1"} {
		_, body := get(t, srv.URL+path)
		for _, bad := range []string{`src="http`, `href="http`, `src="//`, `href="//`, "<script"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: page has %q", path, bad)
			}
		}
	}
	resp, css := get(t, srv.URL+"/static/style.css")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, ".badge") {
		t.Fatalf("stylesheet: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestSessionShowsChainChecks(t *testing.T) {
	srv, f := newTestServer(t, 0)
	resp, body := get(t, srv.URL+"/session/q-1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	checkHeaders(t, resp)
	if len(f.chain) != 1 || f.chain[0] != querySession || len(f.verified) != 0 {
		t.Fatalf("VerifyChain ran for %v, Verify for %v", f.chain, f.verified)
	}
	for _, want := range []string{
		`<span class="badge ok">ok</span>`, `<span class="badge fail">FAIL</span>`, `<span class="badge skip">skip</span>`,
		"1 of 5 checks FAIL, 3 skipped",
		// the checks that need the result, directly or not
		"Need the analyst's result: local result, receipt proof, result hash.",
		`action="/session/q-1/verify"`, `enctype="multipart/form-data"`, "Up to 64 MiB",
		`<td class="hash">AB</td>`, // a record's tx hash, hex
	} {
		if !strings.Contains(body, want) {
			t.Errorf("session page lacks %q", want)
		}
	}

	resp, body = get(t, srv.URL+"/session/"+urlPathEscape(evilSession))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("session with markup in its id: status %d", resp.StatusCode)
	}
	noMarkup(t, "session", body)
	if !strings.Contains(body, "reason &lt;script&gt;") {
		t.Error("the outcome's reason is not shown escaped")
	}

	// A setup session has no approval: no verification runs.
	_, body = get(t, srv.URL+"/session/setup-1")
	if len(f.chain) != 2 || strings.Contains(body, "<form") || !strings.Contains(body, "setup records") {
		t.Errorf("setup session: VerifyChain ran for %v; page:\n%s", f.chain, body)
	}
}

func urlPathEscape(s string) string {
	return strings.NewReplacer(`"`, "%22", "/", "%2F", "<", "%3C", ">", "%3E").Replace(s)
}

func TestUnknownSessionIs404(t *testing.T) {
	srv, f := newTestServer(t, 0)
	for _, path := range []string{"/session/nope", "/session/" + urlPathEscape("<b>nope</b>"), "/nope", "/session/"} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
		}
		noMarkup(t, path, body)
		if strings.Contains(body, "<b>nope") {
			t.Errorf("%s: markup of the path in the page", path)
		}
	}
	resp, _ := postUpload(t, srv.URL+"/session/nope/verify", map[string][]byte{"meta": metaJSON(t, "nope"), "ct": []byte("x")})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("upload for an unknown session: status %d, want 404", resp.StatusCode)
	}
	if len(f.chain)+len(f.verified) != 0 {
		t.Errorf("verification ran for unknown sessions: %v %v", f.chain, f.verified)
	}
}

func TestReadOnly(t *testing.T) {
	srv, _ := newTestServer(t, 0)
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/"}, {http.MethodPost, "/session/q-1"}, {http.MethodPut, "/session/q-1/verify"},
		{http.MethodDelete, "/session/q-1"}, {http.MethodGet, "/session/q-1/verify"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d, want 405", tc.method, tc.path, resp.StatusCode)
		}
	}
}

func metaJSON(t *testing.T, session string) []byte {
	t.Helper()
	b, err := protojson.Marshal(&synodv1.ResultMetadata{Session: session, Receipt: &synodv1.Receipt{Height: 9}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func multipartBody(t *testing.T, files map[string][]byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, name := range []string{"meta", "ct", "extra"} {
		b, ok := files[name]
		if !ok {
			continue
		}
		w, err := mw.CreateFormFile(name, "q-1."+name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

func postUpload(t *testing.T, url string, files map[string][]byte) (*http.Response, string) {
	t.Helper()
	ctype, body := multipartBody(t, files)
	resp, err := http.Post(url, ctype, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// An uploaded result reaches Verify byte for byte, and the page shows
// Verify's checks.
func TestUploadVerifiesResult(t *testing.T) {
	srv, f := newTestServer(t, 1<<20)
	ct := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1000)
	resp, body := postUpload(t, srv.URL+"/session/q-1/verify", map[string][]byte{"meta": metaJSON(t, querySession), "ct": ct})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	if len(f.verified) != 1 || !bytes.Equal(f.held, ct) {
		t.Fatalf("Verify ran for %v with %d bytes, want q-1 with the %d uploaded", f.verified, len(f.held), len(ct))
	}
	for _, want := range []string{"verified: all 2 checks ok", fmt.Sprintf("SHA-256 %x", sha256.Sum256(ct)),
		"Verified with the uploaded result: q-1.meta", "q-1.ct (4000 bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	// Another session's result: the held result refuses, and the page
	// says so, escaped.
	resp, body = postUpload(t, srv.URL+"/session/q-1/verify", map[string][]byte{"meta": metaJSON(t, evil), "ct": ct})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "1 of 1 checks FAIL") || !strings.Contains(body, "is the result of session") {
		t.Errorf("a result of another session: status %d\n%s", resp.StatusCode, body)
	}
	noMarkup(t, "upload of another session", body)
}

func TestUploadBounded(t *testing.T) {
	const limit = 64 << 10
	srv, f := newTestServer(t, limit)
	resp, body := postUpload(t, srv.URL+"/session/q-1/verify", map[string][]byte{"meta": metaJSON(t, querySession), "ct": make([]byte, limit)})
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "limited to 65536 bytes") {
		t.Errorf("upload over the limit: status %d\n%s", resp.StatusCode, body)
	}
	if len(f.verified) != 0 {
		t.Errorf("Verify ran for an oversized upload")
	}
	// Just under the limit passes.
	resp, _ = postUpload(t, srv.URL+"/session/q-1/verify", map[string][]byte{"meta": metaJSON(t, querySession), "ct": make([]byte, limit-1024)})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("upload under the limit: status %d", resp.StatusCode)
	}

	for name, files := range map[string]map[string][]byte{
		"no ciphertext":   {"meta": metaJSON(t, querySession)},
		"no metadata":     {"ct": []byte("x")},
		"an extra field":  {"meta": metaJSON(t, querySession), "ct": []byte("x"), "extra": []byte("x")},
		"empty cipertext": {"meta": metaJSON(t, querySession), "ct": nil},
	} {
		resp, _ := postUpload(t, srv.URL+"/session/q-1/verify", files)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("upload with %s: status %d, want 400", name, resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+"/session/q-1/verify", "application/x-www-form-urlencoded", strings.NewReader("meta=x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a non-multipart upload: status %d, want 400", resp.StatusCode)
	}
	if len(f.verified) != 1 {
		t.Errorf("Verify ran %d times, want once (the upload under the limit)", len(f.verified))
	}
}

// A browser on another site cannot make the page's user post an upload.
func TestUploadRefusedAcrossOrigins(t *testing.T) {
	srv, f := newTestServer(t, 0)
	ctype, body := multipartBody(t, map[string][]byte{"meta": metaJSON(t, querySession), "ct": []byte("x")})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/session/q-1/verify", body)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(f.verified) != 0 {
		t.Errorf("cross-site upload: status %d, Verify ran %d times", resp.StatusCode, len(f.verified))
	}
}
