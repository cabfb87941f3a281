// Package auditweb is the audit web page (mpcctl audit serve): a read-only
// list of the sessions on the consortium chain and, per session, the
// checks of client/audit as `mpcctl audit verify` runs them.
//
// Without a result the page runs audit's VerifyChain (what the chain alone
// proves); a result the analyst uploads (the two files of its result
// store, SESSION.json and SESSION.ct) is verified with audit's Verify and
// then forgotten. The page trusts what the Auditor trusts, the consortium
// file; the list itself is an unverified read that only points at what a
// session's checks prove.
//
// Everything is rendered with html/template and served with a strict
// Content-Security-Policy: no script, no resource from elsewhere. The only
// request that is not a GET is the upload of a result to verify, bounded
// in size and refused across origins.
package auditweb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/client/audit"
)

// Auditor is what the page needs of an audit.Auditor.
type Auditor interface {
	Sessions(ctx context.Context) ([]audit.Session, error)
	Verify(ctx context.Context, session string, held audit.Held) []audit.Check
	VerifyChain(ctx context.Context, session string) []audit.Check
}

// Anchor describes the trust anchor in the page's header.
type Anchor struct {
	File      string // the consortium file, as named on the command line
	Digest    string // its SHA-256, hex
	Name      string // the consortium's name
	ChainID   string
	Parties   []string
	Threshold int
}

// Options configure the page.
type Options struct {
	Anchor Anchor
	// MaxUpload bounds the body of a result upload (DefaultMaxUpload if
	// 0).
	MaxUpload int64
	// VerifyTimeout bounds one verification (DefaultVerifyTimeout if 0).
	VerifyTimeout time.Duration
	Log           *slog.Logger
}

const (
	// DefaultMaxUpload bounds a result upload: a result's metadata and
	// ciphertexts (a few hundred KiB per ciphertext).
	DefaultMaxUpload = 64 << 20
	// DefaultVerifyTimeout is mpcctl audit verify's.
	DefaultVerifyTimeout = 2 * time.Minute
	// concurrentVerifications bounds the verifications running at once:
	// each asks every chain RPC for light blocks.
	concurrentVerifications = 4
)

// Form field names of a result upload.
const (
	fieldMeta = "meta" // SESSION.json: the result's metadata and receipt
	fieldCT   = "ct"   // SESSION.ct: the result ciphertext as received
)

// securityHeaders are sent with every response. The CSP allows the page's
// own stylesheet and nothing else: no script, no frame, no form that
// posts elsewhere.
var securityHeaders = map[string]string{
	"Content-Security-Policy":      "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Cache-Control":                "no-store",
}

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"sessionURL": func(id string) string { return "/session/" + url.PathEscape(id) },
	"join":       func(s []string) string { return strings.Join(s, ", ") },
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"epsilon": func(e float64) string {
		if e == 0 {
			return "none"
		}
		return fmt.Sprintf("%g", e)
	},
	"hex":  func(b []byte) string { return fmt.Sprintf("%X", b) },
	"mark": mark,
	"mib":  func(n int64) string { return fmt.Sprintf("%d MiB", n>>20) },
}).ParseFS(assets, "assets/*.html"))

// mark is a check's status as the page shows it (as audit verify prints
// it) and its CSS class.
func mark(s audit.Status) struct{ Text, Class string } {
	switch s {
	case audit.OK:
		return struct{ Text, Class string }{"ok", "ok"}
	case audit.Fail:
		return struct{ Text, Class string }{"FAIL", "fail"}
	}
	return struct{ Text, Class string }{"skip", "skip"}
}

type server struct {
	a         Auditor
	opts      Options
	log       *slog.Logger
	verifying chan struct{}
}

// New returns the page's handler.
func New(a Auditor, opts Options) http.Handler {
	if opts.MaxUpload <= 0 {
		opts.MaxUpload = DefaultMaxUpload
	}
	if opts.VerifyTimeout <= 0 {
		opts.VerifyTimeout = DefaultVerifyTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &server{a: a, opts: opts, log: opts.Log, verifying: make(chan struct{}, concurrentVerifications)}
	static, _ := fs.Sub(assets, "assets/static")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.list)
	mux.HandleFunc("GET /session/{id}", s.session)
	mux.HandleFunc("POST /session/{id}/verify", s.upload)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	// The upload is the one request with an effect (work for the chain's
	// RPCs); a page elsewhere must not make a browser send it.
	csrf := http.NewCrossOriginProtection()
	return withHeaders(csrf.Handler(mux))
}

func withHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		h.ServeHTTP(w, r)
	})
}

// page is what every template gets.
type page struct {
	Anchor Anchor
	Title  string
	Error  string
	// The list.
	Sessions []audit.Session
	// A session.
	S           audit.Session
	Verifiable  bool
	Checks      []audit.Check
	Verdict     string
	VerdictMark string // CSS class: ok, fail or skip
	Uploaded    string
	NeedsResult []string
	MaxUpload   int64
}

func (s *server) render(w http.ResponseWriter, status int, name string, p page) {
	p.Anchor, p.MaxUpload = s.opts.Anchor, s.opts.MaxUpload
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, p); err != nil {
		s.log.Error("render the audit page", "template", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (s *server) fail(w http.ResponseWriter, status int, title, msg string) {
	s.render(w, status, "error.html", page{Title: title, Error: msg})
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	sessions, err := s.a.Sessions(r.Context())
	if err != nil {
		s.log.Warn("audit page: list sessions", "error", err)
		s.fail(w, http.StatusBadGateway, "The chain did not answer", err.Error())
		return
	}
	s.render(w, http.StatusOK, "list.html", page{Title: "Sessions", Sessions: sessions})
}

// find returns the session id of the request as the chain lists it, and
// writes the error page when it cannot.
func (s *server) find(w http.ResponseWriter, r *http.Request) (audit.Session, bool) {
	id := r.PathValue("id")
	sessions, err := s.a.Sessions(r.Context())
	if err != nil {
		s.log.Warn("audit page: list sessions", "error", err)
		s.fail(w, http.StatusBadGateway, "The chain did not answer", err.Error())
		return audit.Session{}, false
	}
	for _, x := range sessions {
		if x.ID == id {
			return x, true
		}
	}
	s.fail(w, http.StatusNotFound, "No such session", fmt.Sprintf("The chain has no session %q.", id))
	return audit.Session{}, false
}

// verifiable says whether audit's checks apply: they verify an approved
// session (a query, a training, a validation).
func verifiable(x audit.Session) bool {
	for _, e := range x.Records {
		if e.Kind == "approval" {
			return true
		}
	}
	return false
}

func (s *server) session(w http.ResponseWriter, r *http.Request) {
	x, ok := s.find(w, r)
	if !ok {
		return
	}
	p := page{Title: "Session " + x.ID, S: x, Verifiable: verifiable(x)}
	if p.Verifiable {
		checks, ok := s.verify(w, r, x.ID, nil)
		if !ok {
			return
		}
		p.Checks = checks
		p.Verdict, p.VerdictMark = verdict(checks)
		for _, c := range checks {
			if c.Status == audit.Skip && (c.Name == audit.CheckLocal || needsLocal(checks, c)) {
				p.NeedsResult = append(p.NeedsResult, c.Name)
			}
		}
	}
	s.render(w, http.StatusOK, "session.html", p)
}

// needsLocal reports whether check c needs, directly or through other
// checks, the local result.
func needsLocal(checks []audit.Check, c audit.Check) bool {
	for _, n := range c.Needs {
		if n == audit.CheckLocal {
			return true
		}
		for _, d := range checks {
			if d.Name == n && needsLocal(checks, d) {
				return true
			}
		}
	}
	return false
}

func (s *server) upload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxUpload)
	held, err := readUpload(r)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.fail(w, http.StatusRequestEntityTooLarge, "Upload too large",
				fmt.Sprintf("A result upload is limited to %d bytes (mpcctl audit serve --max-upload).", s.opts.MaxUpload))
			return
		}
		s.fail(w, http.StatusBadRequest, "Bad upload", err.Error())
		return
	}
	x, ok := s.find(w, r)
	if !ok {
		return
	}
	p := page{Title: "Session " + x.ID, S: x, Verifiable: verifiable(x)}
	if !p.Verifiable {
		s.fail(w, http.StatusBadRequest, "Nothing to verify", fmt.Sprintf("Session %q has no approval: the audit checks do not apply to it.", x.ID))
		return
	}
	checks, ok := s.verify(w, r, x.ID, held)
	if !ok {
		return
	}
	sum := sha256.Sum256(held.ct)
	p.Checks = checks
	p.Verdict, p.VerdictMark = verdict(checks)
	p.Uploaded = fmt.Sprintf("%s (%d bytes) and %s (%d bytes, SHA-256 %x)", held.metaName, len(held.metaRaw), held.ctName, len(held.ct), sum)
	s.render(w, http.StatusOK, "session.html", p)
}

// verify runs the checks of session, with the held result or, when held
// is nil, of the chain alone, at most concurrentVerifications at once.
func (s *server) verify(w http.ResponseWriter, r *http.Request, session string, held *uploaded) ([]audit.Check, bool) {
	select {
	case s.verifying <- struct{}{}:
		defer func() { <-s.verifying }()
	case <-r.Context().Done():
		return nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.VerifyTimeout)
	defer cancel()
	start := time.Now()
	var checks []audit.Check
	mode := "chain"
	if held == nil {
		checks = s.a.VerifyChain(ctx, session)
	} else {
		mode = "result"
		checks = s.a.Verify(ctx, session, held)
	}
	failed, skipped := audit.Tally(checks)
	s.log.Info("audit page: verified", "session", session, "mode", mode, "checks", len(checks), "failed", failed, "skipped", skipped,
		"duration", time.Since(start).Round(time.Millisecond))
	return checks, true
}

// verdict sums the checks up for the page's banner, with its CSS class.
func verdict(checks []audit.Check) (string, string) {
	failed, skipped := audit.Tally(checks)
	switch {
	case failed > 0:
		return fmt.Sprintf("%d of %d checks FAIL, %d skipped", failed, len(checks), skipped), "fail"
	case skipped > 0:
		return fmt.Sprintf("%d of %d checks ok, %d skipped", len(checks)-skipped, len(checks), skipped), "skip"
	}
	return fmt.Sprintf("verified: all %d checks ok", len(checks)), "ok"
}

// uploaded is a result uploaded through the page: the two files of the
// analyst's result store (client/analyst.Results).
type uploaded struct {
	metaName, ctName string
	metaRaw, ct      []byte
}

// Load implements audit.Held: the upload holds one session's result, read
// as the result store reads it.
func (u *uploaded) Load(session string) (*synodv1.ResultMetadata, []byte, error) {
	meta := &synodv1.ResultMetadata{}
	if err := protojson.Unmarshal(u.metaRaw, meta); err != nil {
		return nil, nil, fmt.Errorf("uploaded %s: not a result's metadata: %w", u.metaName, err)
	}
	if meta.GetSession() != session {
		return nil, nil, fmt.Errorf("uploaded %s is the result of session %q, not of %q", u.metaName, meta.GetSession(), session)
	}
	return meta, u.ct, nil
}

// readUpload reads the two files of a result upload from a multipart
// body (already bounded by the caller).
func readUpload(r *http.Request) (*uploaded, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("expected a form upload (multipart/form-data): %w", err)
	}
	u := &uploaded{}
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the upload: %w", err)
		}
		name := part.FormName()
		if name != fieldMeta && name != fieldCT {
			part.Close()
			return nil, fmt.Errorf("unexpected form field %q (want %q and %q)", name, fieldMeta, fieldCT)
		}
		if seen[name] {
			return nil, fmt.Errorf("form field %q given twice", name)
		}
		seen[name] = true
		b, err := readPart(part)
		if err != nil {
			return nil, err
		}
		if name == fieldMeta {
			u.metaName, u.metaRaw = part.FileName(), b
		} else {
			u.ctName, u.ct = part.FileName(), b
		}
	}
	switch {
	case len(u.metaRaw) == 0:
		return nil, errors.New("no result metadata uploaded (the result's SESSION.json)")
	case len(u.ct) == 0:
		return nil, errors.New("no result ciphertext uploaded (the result's SESSION.ct)")
	}
	return u, nil
}

func readPart(p *multipart.Part) ([]byte, error) {
	defer p.Close()
	b, err := io.ReadAll(p)
	if err != nil {
		return nil, fmt.Errorf("read form field %q: %w", p.FormName(), err)
	}
	return b, nil
}
