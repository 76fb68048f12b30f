// Package webui is the fleet page `upkeep serve` shows at /ui/: an
// overview of the channels, their rollouts and the agents' versions and
// health; one rollout's stages, canaries, bake time and failures; one
// group's windows on a week strip, its freezes and agents; one agent's
// versions, last decision and history; and a searchable, paged agent list.
//
// It is server-rendered with html/template from embedded files; a small
// plain script (static/ui.js, no build step, nothing fetched from
// elsewhere) refreshes the page's content in place from the same URL with
// the header X-Upkeep-Fragment: 1, and counts bake times down.
//
// The page reads what the version server serves: the snapshot
// (server.Backend), the fleet store (reconcile/fleet) and the rollout
// answer tables (rollout.Cache.Answers); a stage's progress is
// server.Progress, as GET /v1/rollouts/<channel> answers it, and windows
// are reconcile/calendar's. It is behind the bearer tokens of the fleet
// API: a login form keeps the token in an HttpOnly, SameSite=Strict
// cookie (Secure unless the server is on plain loopback). It is read-only
// unless Options.Operate is set; then a rollout's page has halt and
// resume buttons, which send the very request POST
// /v1/rollouts/<channel>/halt|resume to the version server's handler with
// the cookie's token, so the step, its checks and its actor are the API's.
// Every POST is checked for a cross-origin browser request
// (http.CrossOriginProtection) and carries a form token derived from the
// session's bearer token.
package webui

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/server"
)

// Prefix is where the page is mounted.
const Prefix = "/ui/"

// Defaults of Options.
const (
	DefaultRefresh = 5 * time.Second
	// DefaultPageSize is the agent list's page; MaxPageSize bounds ?limit=.
	DefaultPageSize = 50
	MaxPageSize     = 500
	// SessionLife is how long the login cookie lasts.
	SessionLife = 12 * time.Hour
)

// Cookie names.
const (
	sessionCookie = "upkeep_ui"
	flashCookie   = "upkeep_ui_flash"
)

// FragmentHeader asks for the page's content alone (the auto-refresh).
const FragmentHeader = "X-Upkeep-Fragment"

// maxForm bounds a POSTed form: a token (at most report.MaxTokenLength),
// a form token and a short note.
const maxForm = 16 << 10

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the page.
type Options struct {
	Backend server.Backend // the served snapshot; required
	Store   fleet.Store    // required
	// Tokens are the fleet API's bearer tokens (server.Options.ReportTokens); required.
	Tokens *report.Tokens
	// Answers are the rollouts' answer tables (rollout.Cache.Answers),
	// to show which version the server answers an agent; nil shows none.
	Answers func() *rollout.Answers
	// Operate shows the halt and resume buttons; API is then required.
	Operate bool
	// API is the version server's handler (server.New): halt and resume
	// are its POST /v1/rollouts/<channel>/halt|resume.
	API http.Handler
	// SecureCookie marks the login cookie Secure: set it unless the page is
	// served over plain HTTP on loopback.
	SecureCookie bool
	Refresh      time.Duration // DefaultRefresh
	StoreTimeout time.Duration // server.DefaultStoreTimeout, for one page
	Now          func() time.Time
	Logger       *slog.Logger
}

// Handler serves the page under Prefix.
type Handler struct {
	o      Options
	log    *slog.Logger
	views  *views
	static http.Handler
	cop    *http.CrossOriginProtection
}

// New checks o and returns the page's handler.
func New(o Options) (*Handler, error) {
	switch {
	case o.Backend == nil || o.Store == nil:
		return nil, errors.New("the fleet page needs the served snapshot and the fleet store")
	case o.Tokens.Len() == 0:
		return nil, errors.New("the fleet page needs the fleet API's bearer tokens (--report-token-file): it shows agent ids and hostnames")
	case o.Operate && o.API == nil:
		return nil, errors.New("the fleet page's halt and resume need the version server's handler")
	}
	o.Refresh = cmp.Or(o.Refresh, DefaultRefresh)
	o.StoreTimeout = cmp.Or(o.StoreTimeout, server.DefaultStoreTimeout)
	if o.Now == nil {
		o.Now = time.Now
	}
	v, err := parseViews()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	h := &Handler{o: o, log: cmp.Or(o.Logger, slog.Default()), views: v, cop: http.NewCrossOriginProtection()}
	h.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(sub))
	return h, nil
}

// contentSecurityPolicy allows only the page's own script, style and
// fetches; nothing may frame it, and forms post only to it.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// setSecurityHeaders applies to every answer of the page, errors included.
func setSecurityHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		h.plain(w, http.StatusNotFound, "not under "+Prefix)
		return
	}
	if strings.HasPrefix(rest, "static/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.plain(w, http.StatusMethodNotAllowed, "static files are read with GET")
			return
		}
		w.Header().Set("Cache-Control", "no-cache") // revalidated: a new binary may change them
		h.static.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store") // pages name hosts
	if r.Method == http.MethodPost {
		if err := h.cop.Check(r); err != nil {
			h.log.Warn("fleet page: cross-origin POST refused", "path", r.URL.Path, "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "error", err)
			h.plain(w, http.StatusForbidden, "cross-origin request refused: post the page's own forms")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, POST")
		h.plain(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
		return
	}
	if rest == "login" {
		h.login(w, r)
		return
	}
	token, ok := h.session(r)
	if !ok {
		h.needLogin(w, r)
		return
	}
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			h.plain(w, http.StatusBadRequest, "the form is not readable or larger than 16 KiB")
			return
		}
		if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(formToken(token))) {
			h.log.Warn("fleet page: POST without its form token refused", "path", r.URL.Path, "remote", r.RemoteAddr)
			h.plain(w, http.StatusForbidden, "the form token is missing or wrong: reload the page and try again")
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.StoreTimeout)
	defer cancel()
	rq := &request{w: w, r: r.WithContext(ctx), token: token, now: h.o.Now()}
	switch {
	case rest == "logout":
		h.logout(rq)
	case rest == "":
		h.overview(rq)
	case rest == "agents":
		h.agentList(rq)
	case strings.HasPrefix(rest, "agents/"):
		h.agent(rq, rest[len("agents/"):])
	case strings.HasPrefix(rest, "groups/"):
		h.group(rq, rest[len("groups/"):])
	case strings.HasPrefix(rest, "rollouts/"):
		tail := rest[len("rollouts/"):]
		if r.Method == http.MethodPost {
			h.operate(rq, tail)
			return
		}
		h.rollout(rq, tail)
	default:
		h.problem(rq, http.StatusNotFound, "No such page", "There is no page at "+r.URL.Path+".")
	}
}

// request is one page request, authenticated.
type request struct {
	w     http.ResponseWriter
	r     *http.Request
	token string
	now   time.Time
}

func (q *request) get() bool {
	if q.r.Method == http.MethodPost {
		q.w.Header().Set("Allow", "GET, HEAD")
		return false
	}
	return true
}

func (q *request) fragment() bool { return q.r.Header.Get(FragmentHeader) == "1" }

// session is the bearer token of the request's login cookie, when it is
// one of the tokens.
func (h *Handler) session(r *http.Request) (string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) > report.MaxTokenLength {
		return "", false
	}
	token := string(b)
	return token, h.o.Tokens.Match(token)
}

// formToken is the form token of a session: a MAC of a fixed text under
// the session's bearer token, so every replica derives the same one and
// a page from another site cannot know it.
func formToken(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("upkeep fleet page form token v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// needLogin sends a browser to the login form; the auto-refresh (and any
// POST) gets 401 instead, which the script shows.
func (h *Handler) needLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost || r.Header.Get(FragmentHeader) == "1" {
		h.plain(w, http.StatusUnauthorized, "not signed in, or the token is no longer accepted: sign in at "+Prefix+"login")
		return
	}
	next := r.URL.Path
	if r.URL.RawQuery != "" {
		next += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, Prefix+"login?next="+urlQueryEscape(next), http.StatusSeeOther)
}

// safeNext is a post-login destination: a path of the page, never
// another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, Prefix+"login") {
		return Prefix
	}
	return next
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	data := loginPage{Next: safeNext(r.URL.Query().Get("next"))}
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			h.plain(w, http.StatusBadRequest, "the form is not readable or larger than 16 KiB")
			return
		}
		data.Next = safeNext(r.PostFormValue("next"))
		token := strings.TrimSpace(r.PostFormValue("token"))
		if h.o.Tokens.Match(token) {
			http.SetCookie(w, &http.Cookie{
				Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(token)),
				Path: Prefix, MaxAge: int(SessionLife / time.Second), HttpOnly: true, Secure: h.o.SecureCookie,
				SameSite: http.SameSiteStrictMode,
			})
			h.log.Info("fleet page: signed in", "remote", r.RemoteAddr, "token", server.TokenName(token))
			http.Redirect(w, r, data.Next, http.StatusSeeOther)
			return
		}
		h.log.Warn("fleet page: sign-in with a wrong token", "remote", r.RemoteAddr)
		data.Error = "That token is not one of the server's tokens (--report-token-file)."
		h.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Data: data})
		return
	}
	h.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Data: data})
}

func (h *Handler) logout(q *request) {
	if q.get() {
		h.problem(q, http.StatusMethodNotAllowed, "Sign out", "Sign out with the button at the top of the page.")
		return
	}
	http.SetCookie(q.w, &http.Cookie{Name: sessionCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: h.o.SecureCookie, SameSite: http.SameSiteStrictMode})
	http.Redirect(q.w, q.r, Prefix+"login", http.StatusSeeOther)
}

// operate is a halt or resume button: the version server's own POST
// /v1/rollouts/<channel>/halt|resume with the session's token.
func (h *Handler) operate(q *request, tail string) {
	if !h.o.Operate {
		h.problem(q, http.StatusForbidden, "Read-only", "This page is read-only: start upkeep serve with --ui-operate to halt and resume rollouts here, or use POST /v1/rollouts/<channel>/halt|resume.")
		return
	}
	var channel, action string
	var ok bool
	if channel, ok = strings.CutSuffix(tail, "/halt"); ok {
		action = "halt"
	} else if channel, ok = strings.CutSuffix(tail, "/resume"); ok {
		action = "resume"
	} else {
		h.problem(q, http.StatusNotFound, "No such action", "A rollout is halted or resumed; nothing else.")
		return
	}
	body := "{}"
	if note := strings.TrimSpace(q.r.PostFormValue("note")); note != "" {
		b, _ := jsonString(note)
		body = `{"note":` + b + `}`
	}
	req, err := http.NewRequestWithContext(q.r.Context(), http.MethodPost, "/v1/rollouts/"+channel+"/"+action, strings.NewReader(body))
	if err != nil {
		h.problem(q, http.StatusBadRequest, "Bad channel", err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+q.token)
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr, req.Host = q.r.RemoteAddr, q.r.Host
	rec := &capture{header: http.Header{}}
	h.o.API.ServeHTTP(rec, req)
	msg := "Rollout of " + channel + ": " + action + " recorded."
	if rec.code != http.StatusOK {
		msg = fmt.Sprintf("Rollout of %s: %s refused (%d): %s", channel, action, rec.code, strings.TrimSpace(rec.body.String()))
	}
	h.setFlash(q.w, msg, rec.code != http.StatusOK)
	http.Redirect(q.w, q.r, Prefix+"rollouts/"+channel, http.StatusSeeOther)
}

// capture is the answer of an in-process request to the API, bounded.
type capture struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (c *capture) Header() http.Header { return c.header }
func (c *capture) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *capture) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	if room := 2048 - c.body.Len(); room > 0 {
		c.body.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// setFlash leaves a one-time message for the next page, in a cookie, so
// that a link cannot make the page say something.
func (h *Handler) setFlash(w http.ResponseWriter, msg string, isErr bool) {
	kind := "ok:"
	if isErr {
		kind = "error:"
	}
	if len(msg) > 1024 {
		msg = msg[:1024] + "…"
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(kind + msg)),
		Path: Prefix, MaxAge: 60, HttpOnly: true, Secure: h.o.SecureCookie, SameSite: http.SameSiteStrictMode})
}

// takeFlash reads and clears the message, on full pages only (the
// auto-refresh must not eat it).
func (h *Handler) takeFlash(q *request) (msg string, isErr bool) {
	if q.fragment() {
		return "", false
	}
	c, err := q.r.Cookie(flashCookie)
	if err != nil {
		return "", false
	}
	http.SetCookie(q.w, &http.Cookie{Name: flashCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: h.o.SecureCookie, SameSite: http.SameSiteStrictMode})
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return "", false
	}
	s := string(b)
	if m, ok := strings.CutPrefix(s, "error:"); ok {
		return m, true
	}
	m, _ := strings.CutPrefix(s, "ok:")
	return m, false
}

func (h *Handler) plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

// storeFailed shows a failed store call (logged with its cause).
func (h *Handler) storeFailed(q *request, what string, err error) {
	h.log.Error("fleet page: store call failed", "what", what, "path", q.r.URL.Path, "error", err)
	msg := what + ": the fleet store failed; the page retries on its own, and the server log says why."
	if errors.Is(err, context.DeadlineExceeded) {
		msg = what + ": the fleet store did not answer in time; the page retries on its own."
	}
	q.w.Header().Set("Retry-After", "5")
	h.problemPage(q, http.StatusServiceUnavailable, "Fleet store unavailable", msg, true)
}
