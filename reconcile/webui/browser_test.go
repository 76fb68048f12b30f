package webui_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/server"
)

// chromiumPath is Debian's chromium (e2e/hostdeps/debian-packages.txt).
const chromiumPath = "/usr/bin/chromium"

// browser drives one headless Chromium tab and saves its screenshots.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
	n     int
}

// TestBrowser signs in with a real Chromium against the page served on
// loopback over a seeded SQLite store, opens every view and checks what
// matters on it, halts and resumes a rollout with the buttons and checks
// the store, and sees the overview's agent count follow a new report
// without a reload. Screenshots go to $UPKEEP_TEST_ARTIFACTS/webui.
func TestBrowser(t *testing.T) {
	if _, err := exec.LookPath(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: install Debian's chromium (e2e/hostdeps/debian-packages.txt; .ci/run does)", chromiumPath)
		}
		t.Skipf("%s is missing: apt-get install chromium to run the browser test", chromiumPath)
	}
	shots := os.Getenv("UPKEEP_TEST_ARTIFACTS")
	if shots == "" {
		shots = t.TempDir()
	}
	shots = filepath.Join(shots, "webui")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	// The real clock, so the page's script counts the bake time down from
	// the same now the server rendered.
	e := newEnv(t, envOptions{operate: true, refresh: 300 * time.Millisecond, now: func() time.Time { return time.Now().UTC() }})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	defer cancelTab()
	b := &browser{t: t, ctx: tab, base: e.srv.URL, shots: shots}
	// Every document records the CSP violations it sees (a DevTools
	// script, which the page's CSP does not govern); shot checks them.
	b.do(chromedp.Navigate("about:blank"))
	if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.upkeepCSP = []; document.addEventListener("securitypolicyviolation", function (e) { window.upkeepCSP.push(e.violatedDirective + " " + e.blockedURI); });`,
	}); err != nil {
		t.Fatal(err)
	}

	// Signing in: a page without a session goes to the form, then back.
	b.do(chromedp.Navigate(b.base + "/ui/groups/eu-prod"))
	b.wait("#token")
	b.shot("login")
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), "0000000000000000-wrong"))
	b.submit("#signin")
	if got := b.text("#login-error"); !strings.Contains(got, "not one of the server's tokens") {
		t.Errorf("a wrong token: %q", got)
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), testToken))
	b.submit("#signin")
	if loc := b.location(); loc != b.base+"/ui/groups/eu-prod" {
		t.Errorf("after signing in the browser is at %s, want the group it asked for", loc)
	}
	if c := eval[string](b, `document.cookie`); strings.Contains(c, "upkeep_ui") {
		t.Errorf("the session cookie is readable by scripts: %q", c)
	}

	// The group: its week strip holds windows (or the freeze), its agents are counted.
	b.wait("#group-agents")
	if n := b.text("#group-agents"); n != "8" {
		t.Errorf("eu-prod agents %q, want 8", n)
	}
	if n := eval[int](b, `document.querySelectorAll("svg.week rect.window, svg.week rect.freeze").length`); n == 0 {
		t.Error("the week strip draws no window and no freeze")
	}
	if s := b.text("#window-state"); !regexp.MustCompile(`open|next window|no window`).MatchString(s) {
		t.Errorf("window state %q", s)
	}
	b.shot("group")

	// The overview: the halted rollout first, in red; the counts.
	b.do(chromedp.Navigate(b.base + "/ui/"))
	b.wait("#agent-count")
	if n := b.text("#agent-count"); n != "24" {
		t.Errorf("agent count %q, want 24", n)
	}
	if first := eval[string](b, `document.querySelector("table.channels tbody tr").dataset.channel`); first != "stable/onprem" {
		t.Errorf("the first channel is %q, want the halted stable/onprem", first)
	}
	if color := eval[string](b, `getComputedStyle(document.querySelector("tr.halted td")).color`); color != "rgb(198, 40, 40)" {
		t.Errorf("the halted row's colour is %s, want red rgb(198, 40, 40)", color)
	}
	if n := b.text(`tr[data-health="unhealthy"] td.n`); n != "2" {
		t.Errorf("unhealthy %q, want 2", n)
	}
	b.shot("overview")

	// The baking rollout: stages, the canary, the bake countdown ticking.
	b.click(`a[href="/ui/rollouts/stable/cloud"]`)
	b.wait("#rollout-state")
	if s := b.text("#rollout-state"); s != "Baking" {
		t.Errorf("state %q, want Baking", s)
	}
	if on, all := b.text(`li[data-stage="0"] .on-version`), b.text(`li[data-stage="0"] .agents`); on != "1" || all != "4" {
		t.Errorf("stage 0: %s of %s on 17.4.0, want 1 of 4", on, all)
	}
	left := b.text("#bake-left")
	if !regexp.MustCompile(`^(39|40)m \d+s$`).MatchString(left) {
		t.Errorf("bake countdown %q, want about 40m", left)
	}
	b.shot("rollout-baking")
	b.click(`table.canaries a[href="/ui/agents/c-1"]`)
	b.wait("#agent-current")
	if v, ans := b.text("#agent-current"), b.text("#agent-answer"); v != "17.4.0" || ans != "17.4.0" {
		t.Errorf("canary c-1 runs %q and is answered %q, want 17.4.0 and 17.4.0", v, ans)
	}
	b.shot("agent-canary")

	// The halted rollout links its failed agent.
	b.do(chromedp.Navigate(b.base + "/ui/rollouts/stable/onprem"))
	b.wait("#failure-count")
	if n := b.text("#failure-count"); n != "1" {
		t.Errorf("failures %q, want 1", n)
	}
	b.shot("rollout-halted")
	b.click(`table.failures a[href="/ui/agents/onprem-2"]`)
	b.wait("#decision-rule")
	if h := b.text("#agent-health"); h != "healthy" {
		t.Errorf("onprem-2 health %q", h)
	}
	b.shot("agent-failed")

	// The agent list: the header's search.
	b.do(chromedp.SendKeys(chromedp.CSS(`header input[name="q"]`), "us-"))
	b.submit(`header form.search button`)
	b.wait("#selection-count")
	if n := b.text("#selection-count"); n != "8" {
		t.Errorf("agents with us- in the id: %q, want 8", n)
	}
	b.shot("agents-search")

	// Halt, then resume, with the buttons: the store changes, with the operator's actor.
	b.do(chromedp.Navigate(b.base + "/ui/rollouts/stable/cloud"))
	b.wait("#halt")
	b.do(chromedp.SendKeys(chromedp.CSS(`form[action$="/halt"] input[name="note"]`), "canary logs errors"))
	b.submit("#halt")
	b.wait("#resume")
	if s := b.text("#rollout-state"); s != "Halted" {
		t.Errorf("after halt the page says %q", s)
	}
	if f := b.text("#flash"); !strings.Contains(f, "halt recorded") {
		t.Errorf("after halt the notice says %q", f)
	}
	actor := rollout.OperatorActor(server.TokenName(testToken))
	b.checkStore(e, fleet.StateHalted, rollout.RuleHaltedByOperator, actor, "canary logs errors")
	b.shot("rollout-halted-by-operator")
	b.submit("#resume")
	b.wait("#halt")
	if s := b.text("#rollout-state"); s == "Halted" {
		t.Error("after resume the page still says Halted")
	}
	b.checkStore(e, "", rollout.RuleResumedByOperator, actor, "")
	b.shot("rollout-resumed")

	// Auto-refresh: a new report shows in the overview's count with no reload.
	b.do(chromedp.Navigate(b.base + "/ui/"))
	b.wait("#agent-count")
	b.do(chromedp.Evaluate[chromedp.Void](`window.upkeepMarker = 42`))
	if n := b.text("#agent-count"); n != "24" {
		t.Fatalf("agent count before the report %q", n)
	}
	b.postReport("new-1")
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](`document.getElementById("agent-count").textContent === "25"`,
		chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Errorf("the count did not follow the new report: %v (it shows %q)", err, b.text("#agent-count"))
	}
	if m := eval[int](b, `window.upkeepMarker || 0`); m != 42 {
		t.Error("the page reloaded to refresh; it should replace its content in place")
	}
	if s := b.text("#refresh-status"); !strings.HasPrefix(s, "Updated") {
		t.Errorf("refresh status %q", s)
	}
	b.shot("overview-refreshed")

	// The CSP check above can see a violation: an inline style is one.
	b.do(chromedp.Evaluate[chromedp.Void](`document.body.insertAdjacentHTML("beforeend", '<p style="color: red">inline</p>')`))
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](`window.upkeepCSP.length > 0`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("an inline style raised no CSP violation: the page's CSP is not in force (%v)", err)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`window.upkeepCSP = []`))

	// Signing out ends the session: the next page asks to sign in.
	b.submit("header form.logout button")
	b.wait("#token")
	b.do(chromedp.Navigate(b.base + "/ui/"))
	b.wait("#token")
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b *browser) wait(sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		b.shot("failed-wait")
		b.t.Fatalf("waiting for %s at %s: %v\n%s", sel, b.location(), err, html)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	b.wait(sel)
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) location() string {
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("location: %v", err)
	}
	return loc
}

// click follows a link and waits for the page it loads.
func (b *browser) click(sel string) {
	b.t.Helper()
	b.wait(sel)
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("clicking %s: %v", sel, err)
	}
	if resp.Status != http.StatusOK {
		b.t.Fatalf("clicking %s: %d %s", sel, resp.Status, resp.URL)
	}
}

// submit clicks a form's button and waits for the page the answer (or
// its redirect) loads.
func (b *browser) submit(sel string) {
	b.t.Helper()
	b.wait(sel)
	if _, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("submitting with %s: %v", sel, err)
	}
}

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func (b *browser) shot(name string) {
	b.t.Helper()
	if v := eval[[]string](b, `window.upkeepCSP || []`); len(v) > 0 {
		b.t.Errorf("%s: the page broke its own CSP: %q", name, v)
	}
	b.n++
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
}

// checkStore checks the stored rollout of stable/cloud and its latest
// transition (state "" : any but Halted).
func (b *browser) checkStore(e *env, state, rule, actor, note string) {
	b.t.Helper()
	ctx := context.Background()
	r, _, err := e.store.Rollout(ctx, "stable/cloud")
	if err != nil {
		b.t.Fatal(err)
	}
	ts, err := e.store.Transitions(ctx, "stable/cloud", 1)
	if err != nil || len(ts) != 1 {
		b.t.Fatalf("transitions: %v %v", ts, err)
	}
	if (state != "" && r.State != state) || (state == "" && r.State == fleet.StateHalted) || r.Rule != rule ||
		ts[0].Actor != actor || !strings.Contains(ts[0].Message, note) {
		b.t.Errorf("stored rollout %s by %s; transition %+v; want state %q rule %s actor %s note %q", r.State, r.Rule, ts[0], state, rule, actor, note)
	}
}

// postReport sends a new agent's report to the API, as an updater does.
func (b *browser) postReport(id string) {
	b.t.Helper()
	r := hostReport(id, "edge-lab", "edge", "17.4.2", "17.4.2", report.HealthHealthy)
	r.SetDecision(reconcile.Decision{Action: reconcile.ActionNothing, Rule: reconcile.RuleUpToDate, Reason: "UpToDate", Message: "17.4.2 is installed"})
	tokenFile := filepath.Join(b.t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		b.t.Fatal(err)
	}
	c, err := report.NewClient(b.base, report.ClientOptions{TokenFile: tokenFile})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := c.Send(b.ctx, r); err != nil {
		b.t.Fatalf("posting the report of %s: %v", id, err)
	}
}
