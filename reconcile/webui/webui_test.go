package webui_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/server"
)

var update = flag.Bool("update", false, "rewrite the golden pages in testdata/")

// noRedirects is a client that shows each answer as it is.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type answer struct {
	code   int
	header http.Header
	body   string
}

// do sends one request; header is name, value pairs; a "Cookie" of
// "session" is the login cookie of testToken.
func (e *env) do(t *testing.T, method, path string, form url.Values, header ...string) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Cookie" && header[i+1] == "session" {
			req.AddCookie(sessionCookie(testToken))
			continue
		}
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

func sessionCookie(token string) *http.Cookie {
	return &http.Cookie{Name: "upkeep_ui", Value: base64.RawURLEncoding.EncodeToString([]byte(token))}
}

// csrfOf is the form token a page carries.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form token in the page:\n%s", page)
	}
	return m[1]
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".html")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden page; run go test -run %s -update ./reconcile/webui and review the diff\n%s",
			path, t.Name(), firstDiff(string(want), got))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\nwant: " + w + "\ngot:  " + g
		}
	}
	return ""
}

// TestPages renders every view over the seeded store with the fixed clock
// and compares it with its golden page, then checks the figures that
// matter in it, so a golden rewritten with a wrong number still fails.
func TestPages(t *testing.T) {
	ro := newEnv(t, envOptions{})
	op := newEnv(t, envOptions{operate: true})
	for _, tc := range []struct {
		scenario string
		e        *env
		path     string
		header   []string
		code     int
		golden   string
		contains []string
		absent   []string
	}{
		{scenario: "the login form, without a session", e: ro, path: "/ui/login?next=/ui/agents", code: 200, golden: "login",
			contains: []string{`name="next" value="/ui/agents"`, `type="password"`}},
		{scenario: "the overview lists the halted rollout first, in red, and counts the agents", e: ro, path: "/ui/", code: 200, golden: "overview",
			contains: []string{`<tr class="halted" data-channel="stable/onprem">`, `<span id="agent-count">24</span>`,
				`<tr data-health="unhealthy"><td><a class="health h-unhealthy" href="/ui/agents?health=unhealthy">unhealthy</a></td><td class="n">2</td>`,
				`<tr data-health="stale"><td><a class="health h-stale" href="/ui/agents?health=stale">stale</a></td><td class="n">1</td>`,
				`<tr data-version="17.3.0"><td class="ver">17.3.0</td><td class="n">19</td>`,
				`no rollout: every agent gets the version at once`, `read-only`}},
		{scenario: "the overview's content alone, for the auto-refresh", e: ro, path: "/ui/", header: []string{"X-Upkeep-Fragment", "1"}, code: 200,
			golden: "overview-fragment", absent: []string{"<html", "<header"}},
		{scenario: "a baking rollout: stages with progress, the canary, the bake countdown, no buttons when read-only", e: ro, path: "/ui/rollouts/stable/cloud", code: 200, golden: "rollout-baking",
			contains: []string{`id="rollout-state">Baking</span>`, `data-until="2026-12-03T12:40:00Z">40m</span>`,
				`<span class="on-version">1</span> of <span class="agents">4</span> on 17.4.0`, `<tr data-agent="c-1"><td><a href="/ui/agents/c-1">c-1</a></td><td>canary-hosts</td>`,
				`<span class="on-version">0</span> of <span class="agents">16</span> on 17.4.0`, `<span id="failure-count">0</span>`},
			absent: []string{`id="halt"`, `id="resume"`}},
		{scenario: "a baking rollout with --ui-operate offers halt, not resume", e: op, path: "/ui/rollouts/stable/cloud", code: 200, golden: "rollout-baking-operate",
			contains: []string{`action="/ui/rollouts/stable/cloud/halt"`, `id="halt"`}, absent: []string{`id="resume"`}},
		{scenario: "a halted rollout links its failed agent and, operated, offers resume", e: op, path: "/ui/rollouts/stable/onprem", code: 200, golden: "rollout-halted",
			contains: []string{`id="rollout-state">Halted</span>`, `<tr data-agent="onprem-2"><td><a href="/ui/agents/onprem-2">onprem-2</a></td><td>onprem</td><td><span class="tag crit">rolledBack</span>`,
				`<span id="failure-count">1</span>`, `id="resume"`}, absent: []string{`id="halt"`}},
		{scenario: "a group's week strip in Berlin time, its freeze ahead and its agents", e: ro, path: "/ui/groups/eu-prod", code: 200, golden: "group-eu-prod",
			contains: []string{`next window Tue 08 Dec 02:00 CET – 06:00`, `<title>window Tue 08 Dec 02:00 – Tue 08 Dec 06:00 CET</title>`,
				`<td>year-end</td><td>Sat 19 Dec 00:00 CET</td>`, `<span id="group-agents">8</span>`, `max concurrent 3`}},
		{scenario: "a group without windows says its updaters find no usable schedule", e: ro, path: "/ui/groups/edge-lab", code: 200, golden: "group-edge-lab",
			contains: []string{`no window</span> in the next 14 days`, `No window this week.`}},
		{scenario: "the agent list pages by cursor", e: ro, path: "/ui/agents?limit=5", code: 200, golden: "agents-page1",
			contains: []string{`<span id="selection-count">24</span>`, `5 shown`, `id="next-page"`}},
		{scenario: "the agent list searches ids", e: ro, path: "/ui/agents?q=C-", code: 200, golden: "agents-search",
			contains: []string{`<span id="selection-count">4</span> with “C-” in the id`, `value="C-"`}, absent: []string{`id="next-page"`}},
		{scenario: "an agent: versions, the answer under the rollout, the last decision and its history", e: ro, path: "/ui/agents/c-2", code: 200, golden: "agent-held",
			contains: []string{`id="agent-answer">17.3.0</span> <span class="tag">held: NotCanary</span>`, `id="decision-rule">RolloutHeld</strong>`}},
		{scenario: "the canary's page shows its update in the history", e: ro, path: "/ui/agents/c-1", code: 200, golden: "agent-canary",
			contains: []string{`id="agent-current">17.4.0</td>`, `id="agent-answer">17.4.0</span>`, `(latest 3, newest first)`}},
		{scenario: "an unknown agent is a 404 page", e: ro, path: "/ui/agents/nobody", code: 404, golden: "problem-unknown-agent",
			contains: []string{`No report from agent &#34;nobody&#34;`}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			header := tc.header
			if tc.golden != "login" {
				header = append([]string{"Cookie", "session"}, header...)
			}
			a := tc.e.do(t, "GET", tc.path, nil, header...)
			if a.code != tc.code {
				t.Fatalf("GET %s: %d, want %d\n%s", tc.path, a.code, tc.code, a.body)
			}
			if ct := a.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			golden(t, tc.golden, a.body)
			for _, s := range tc.contains {
				if !strings.Contains(a.body, s) {
					t.Errorf("the page lacks %s", s)
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(a.body, s) {
					t.Errorf("the page has %s", s)
				}
			}
		})
	}
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		scenario, method, path string
		header                 []string
	}{
		{"a page", "GET", "/ui/", []string{"Cookie", "session"}},
		{"the login form", "GET", "/ui/login", nil},
		{"the redirect to the login form", "GET", "/ui/agents", nil},
		{"the auto-refresh signed out", "GET", "/ui/", []string{"X-Upkeep-Fragment", "1"}},
		{"a static file", "GET", "/ui/static/ui.js", nil},
		{"an unknown page", "GET", "/ui/nothing", []string{"Cookie", "session"}},
		{"a refused POST", "POST", "/ui/logout", []string{"Cookie", "session"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			a := e.do(t, tc.method, tc.path, nil, tc.header...)
			for name, want := range map[string]string{
				"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
				"X-Frame-Options":         "DENY",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := a.header.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if !strings.HasPrefix(tc.path, "/ui/static/") && a.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", a.header.Get("Cache-Control"))
			}
		})
	}
	// No inline script anywhere: the CSP would block it, so the page must not need it.
	a := e.do(t, "GET", "/ui/rollouts/stable/cloud", nil, "Cookie", "session")
	if regexp.MustCompile(`<script(?:\s+[^>]*)?>[^<]`).MatchString(a.body) || strings.Contains(a.body, " onclick=") || strings.Contains(a.body, " style=") {
		t.Error("the page has an inline script, event handler or style, which its CSP refuses")
	}
	js := e.do(t, "GET", "/ui/static/ui.js", nil)
	if js.code != 200 || !strings.HasPrefix(js.header.Get("Content-Type"), "text/javascript") || !strings.Contains(js.body, "X-Upkeep-Fragment") {
		t.Errorf("ui.js: %d %q", js.code, js.header.Get("Content-Type"))
	}
}

func TestSignIn(t *testing.T) {
	t.Run("without a session a page redirects to the login form, keeping where it was going", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		a := e.do(t, "GET", "/ui/agents?q=eu", nil)
		if a.code != http.StatusSeeOther || a.header.Get("Location") != "/ui/login?next="+url.QueryEscape("/ui/agents?q=eu") {
			t.Errorf("%d Location %q", a.code, a.header.Get("Location"))
		}
		if f := e.do(t, "GET", "/ui/", nil, "X-Upkeep-Fragment", "1"); f.code != http.StatusUnauthorized {
			t.Errorf("the auto-refresh without a session: %d, want 401", f.code)
		}
	})
	t.Run("a cookie with a token the server does not have is no session", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		req, _ := http.NewRequest("GET", e.srv.URL+"/ui/", nil)
		req.AddCookie(sessionCookie("0000000000000000-not-a-token"))
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("%d, want 303 to the login form", resp.StatusCode)
		}
	})
	t.Run("a wrong token is refused and sets no cookie", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		a := e.do(t, "POST", "/ui/login", url.Values{"token": {"0000000000000000-not-a-token"}, "next": {"/ui/"}})
		if a.code != http.StatusUnauthorized || len(a.header.Values("Set-Cookie")) != 0 {
			t.Errorf("%d, Set-Cookie %q", a.code, a.header.Values("Set-Cookie"))
		}
		golden(t, "login-refused", a.body)
		if !strings.Contains(a.body, `id="login-error"`) {
			t.Error("no error on the form")
		}
	})
	for _, secure := range []bool{false, true} {
		name := "on plain loopback the cookie is HttpOnly, SameSite=Strict, for /ui/ only"
		if secure {
			name = "beyond plain loopback the cookie is Secure too"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{secure: secure})
			a := e.do(t, "POST", "/ui/login", url.Values{"token": {testToken}, "next": {"/ui/groups/eu-prod"}})
			if a.code != http.StatusSeeOther || a.header.Get("Location") != "/ui/groups/eu-prod" {
				t.Fatalf("%d Location %q\n%s", a.code, a.header.Get("Location"), a.body)
			}
			cookies := (&http.Response{Header: a.header}).Cookies()
			if len(cookies) != 1 {
				t.Fatalf("cookies %v", cookies)
			}
			c := cookies[0]
			if c.Name != "upkeep_ui" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" || c.Secure != secure || c.MaxAge != 12*3600 {
				t.Errorf("cookie %+v", c)
			}
			req, _ := http.NewRequest("GET", e.srv.URL+"/ui/", nil)
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
			resp, err := noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("the cookie set opens the overview: %d", resp.StatusCode)
			}
		})
	}
	t.Run("next never leaves the page", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		for _, next := range []string{"//evil.example/ui/", "https://evil.example/", "/ui/\\evil", "/other", "/ui/login"} {
			a := e.do(t, "POST", "/ui/login", url.Values{"token": {testToken}, "next": {next}})
			if a.header.Get("Location") != "/ui/" {
				t.Errorf("next %q: Location %q, want /ui/", next, a.header.Get("Location"))
			}
		}
	})
	t.Run("a login form posted from another site is refused", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		a := e.do(t, "POST", "/ui/login", url.Values{"token": {testToken}}, "Origin", "https://evil.example")
		if a.code != http.StatusForbidden || len(a.header.Values("Set-Cookie")) != 0 {
			t.Errorf("%d, Set-Cookie %q", a.code, a.header.Values("Set-Cookie"))
		}
	})
	t.Run("sign out clears the cookie and needs the form token", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		page := e.do(t, "GET", "/ui/", nil, "Cookie", "session")
		if a := e.do(t, "POST", "/ui/logout", url.Values{}, "Cookie", "session"); a.code != http.StatusForbidden {
			t.Errorf("sign out without the form token: %d, want 403", a.code)
		}
		a := e.do(t, "POST", "/ui/logout", url.Values{"csrf": {csrfOf(t, page.body)}}, "Cookie", "session")
		cookies := (&http.Response{Header: a.header}).Cookies()
		if a.code != http.StatusSeeOther || len(cookies) != 1 || cookies[0].MaxAge >= 0 || cookies[0].Value != "" {
			t.Errorf("%d cookies %+v", a.code, cookies)
		}
	})
}

func TestOperate(t *testing.T) {
	ctx := context.Background()
	state := func(t *testing.T, e *env, ch string) fleet.Rollout {
		t.Helper()
		r, ok, err := e.store.Rollout(ctx, ch)
		if err != nil || !ok {
			t.Fatalf("rollout %s: %v %v", ch, ok, err)
		}
		return r
	}
	t.Run("read-only: a halt posted anyway is refused and changes nothing", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		page := e.do(t, "GET", "/ui/rollouts/stable/cloud", nil, "Cookie", "session")
		a := e.do(t, "POST", "/ui/rollouts/stable/cloud/halt", url.Values{"csrf": {csrfOf(t, page.body)}}, "Cookie", "session")
		if a.code != http.StatusForbidden || !strings.Contains(a.body, "--ui-operate") {
			t.Errorf("%d\n%s", a.code, a.body)
		}
		if r := state(t, e, "stable/cloud"); r.State != fleet.StateBaking {
			t.Errorf("state %s", r.State)
		}
	})
	for _, tc := range []struct {
		scenario string
		form     url.Values
		header   []string
	}{
		{"without the form token", url.Values{"note": {"x"}}, nil},
		{"with another session's form token", url.Values{}, nil},
		{"with the right form token from another site's page", nil, []string{"Origin", "https://evil.example"}},
		{"with the right form token in a cross-site request", nil, []string{"Sec-Fetch-Site", "cross-site"}},
	} {
		t.Run("a halt "+tc.scenario+" is refused", func(t *testing.T) {
			e := newEnv(t, envOptions{operate: true})
			page := e.do(t, "GET", "/ui/rollouts/stable/cloud", nil, "Cookie", "session")
			form := tc.form
			switch {
			case form == nil:
				form = url.Values{"csrf": {csrfOf(t, page.body)}}
			case tc.scenario == "with another session's form token":
				other := e.do(t, "POST", "/ui/login", url.Values{"token": {otherToken}})
				c := (&http.Response{Header: other.header}).Cookies()[0]
				req, _ := http.NewRequest("GET", e.srv.URL+"/ui/rollouts/stable/cloud", nil)
				req.AddCookie(c)
				resp, err := noRedirects.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				form.Set("csrf", csrfOf(t, string(b)))
			}
			a := e.do(t, "POST", "/ui/rollouts/stable/cloud/halt", form, append([]string{"Cookie", "session"}, tc.header...)...)
			if a.code != http.StatusForbidden {
				t.Errorf("%d, want 403\n%s", a.code, a.body)
			}
			if r := state(t, e, "stable/cloud"); r.State != fleet.StateBaking {
				t.Errorf("the rollout changed: %s", r.State)
			}
		})
	}
	t.Run("halt then resume go through the API: same rules, same actor, store changed", func(t *testing.T) {
		e := newEnv(t, envOptions{operate: true})
		page := e.do(t, "GET", "/ui/rollouts/stable/cloud", nil, "Cookie", "session")
		csrf := csrfOf(t, page.body)
		a := e.do(t, "POST", "/ui/rollouts/stable/cloud/halt", url.Values{"csrf": {csrf}, "note": {"canary logs errors"}}, "Cookie", "session")
		if a.code != http.StatusSeeOther || a.header.Get("Location") != "/ui/rollouts/stable/cloud" {
			t.Fatalf("%d %q\n%s", a.code, a.header.Get("Location"), a.body)
		}
		r := state(t, e, "stable/cloud")
		ts, err := e.store.Transitions(ctx, "stable/cloud", 1)
		if err != nil {
			t.Fatal(err)
		}
		actor := rollout.OperatorActor(server.TokenName(testToken))
		if r.State != fleet.StateHalted || r.Rule != rollout.RuleHaltedByOperator || ts[0].Actor != actor || !strings.Contains(ts[0].Message, "canary logs errors") {
			t.Errorf("after halt: %s %s; transition %+v; want actor %s", r.State, r.Rule, ts[0], actor)
		}
		// The redirect's page shows what happened once.
		flash := (&http.Response{Header: a.header}).Cookies()
		req, _ := http.NewRequest("GET", e.srv.URL+"/ui/rollouts/stable/cloud", nil)
		req.AddCookie(sessionCookie(testToken))
		for _, c := range flash {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(body, []byte(`id="flash">Rollout of stable/cloud: halt recorded.`)) || !bytes.Contains(body, []byte(`id="resume"`)) {
			t.Errorf("the page after halt lacks its notice or the resume button:\n%s", body)
		}
		// Halting twice is the API's 409, shown as the notice.
		a = e.do(t, "POST", "/ui/rollouts/stable/cloud/halt", url.Values{"csrf": {csrf}}, "Cookie", "session")
		c := (&http.Response{Header: a.header}).Cookies()
		if len(c) != 1 {
			t.Fatalf("no notice cookie: %v", c)
		}
		msg, _ := base64.RawURLEncoding.DecodeString(c[0].Value)
		if !strings.Contains(string(msg), "refused (409)") {
			t.Errorf("the second halt's notice %q", msg)
		}
		a = e.do(t, "POST", "/ui/rollouts/stable/cloud/resume", url.Values{"csrf": {csrf}}, "Cookie", "session")
		if a.code != http.StatusSeeOther {
			t.Fatalf("resume: %d", a.code)
		}
		if r := state(t, e, "stable/cloud"); r.State == fleet.StateHalted || r.Rule != rollout.RuleResumedByOperator {
			t.Errorf("after resume: %s %s", r.State, r.Rule)
		}
	})
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		scenario, path string
		code           int
		says           string
	}{
		{"an unknown query parameter", "/ui/agents?page=2", 400, "Unknown query parameter"},
		{"a cursor that is not one", "/ui/agents?after=%25%25", 400, "not a cursor"},
		{"a page size beyond the limit", "/ui/agents?limit=501", 400, "from 1 to 500"},
		{"a health that does not exist", "/ui/agents?health=sick", 400, "healthy, unhealthy, unknown or stale"},
		{"a channel without a rollout", "/ui/rollouts/edge", 404, "has no rollout"},
		{"a group the revision lacks", "/ui/groups/nowhere", 404, "no group"},
		{"an agent id that cannot be one", "/ui/agents/-bad", 400, "agentId"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			a := e.do(t, "GET", tc.path, nil, "Cookie", "session")
			if a.code != tc.code || !strings.Contains(a.body, tc.says) {
				t.Errorf("%d, want %d saying %q\n%s", a.code, tc.code, tc.says, a.body)
			}
		})
	}
}

func TestAgentListFollowsItsCursor(t *testing.T) {
	e := newEnv(t, envOptions{})
	seen := map[string]bool{}
	next := "/ui/agents?limit=7&health=healthy"
	re := regexp.MustCompile(`<tr data-agent="([^"]+)">`)
	nextRe := regexp.MustCompile(`<a href="(/ui/agents\?[^"]+)" id="next-page"`)
	for pages := 0; next != ""; pages++ {
		if pages > 10 {
			t.Fatal("more pages than agents")
		}
		a := e.do(t, "GET", strings.ReplaceAll(next, "&amp;", "&"), nil, "Cookie", "session")
		if a.code != 200 {
			t.Fatalf("GET %s: %d\n%s", next, a.code, a.body)
		}
		if !strings.Contains(a.body, `<span id="selection-count">20</span>`) {
			t.Errorf("page %d does not count the 20 healthy agents of the whole selection", pages)
		}
		for _, m := range re.FindAllStringSubmatch(a.body, -1) {
			if seen[m[1]] {
				t.Errorf("%s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := nextRe.FindStringSubmatch(a.body); m != nil {
			next = m[1]
		}
	}
	if len(seen) != 20 {
		t.Errorf("%d agents over the pages, want the 20 healthy ones", len(seen))
	}
}

func TestStoreFailureIsAPageThatRetries(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.store.Close()
	for _, path := range []string{"/ui/", "/ui/rollouts/stable/cloud", "/ui/groups/eu-prod", "/ui/agents", "/ui/agents/c-1"} {
		a := e.do(t, "GET", path, nil, "Cookie", "session")
		if a.code != http.StatusServiceUnavailable || !strings.Contains(a.body, "the fleet store failed") || !strings.Contains(a.body, `data-refresh=`) {
			t.Errorf("%s with the store closed: %d\n%s", path, a.code, a.body)
		}
	}
}
