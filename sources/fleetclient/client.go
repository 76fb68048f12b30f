// Package fleetclient is the operator's client of a version server's
// fleet routes — GET /v1/fleet (paged), /v1/channels, /v1/groups,
// /v1/rollouts[/<channel>] and POST /v1/rollouts/<channel>/halt|resume —
// for `upkeep fleet`, `upkeep rollout` and `upkeep diff --server`. It
// follows the updaters' rules: HTTPS unless the host is loopback
// (sources/netpolicy), the bearer token read from a file on every request
// and never printed, redirects not followed (they would carry the token
// elsewhere), a timeout on every request and a bound on every body. Its
// errors say what to do next. The pure functions of view.go and render.go
// turn the answers into the tables the commands print.
package fleetclient

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/sources/netpolicy"
)

// DefaultTimeout bounds one request, from dialing to the end of the body.
const DefaultTimeout = 30 * time.Second

// Body limits. A fleet page of 10,000 agents is about 10 MiB; every other
// answer is far smaller. A body over its limit is an error, not truncated.
const (
	MaxFleetPageBody = 64 << 20
	MaxBody          = 8 << 20
	maxErrorBody     = 4 << 10
)

// MaxPages bounds how many pages of /v1/fleet one listing reads (each of up
// to fleet.MaxPage agents): far above any fleet the store admits by default.
const MaxPages = 100

// Options configure a Client.
type Options struct {
	// TokenFile holds the bearer token, one of the server's
	// --report-token-file. Read again on every request; never printed.
	TokenFile string
	// CAFile is a PEM bundle of the authorities to trust instead of the
	// system's, for a server on a private PKI.
	CAFile string
	// Timeout bounds each request (DefaultTimeout).
	Timeout time.Duration
	// UserAgent is sent as User-Agent; default "upkeep-cli".
	UserAgent string
}

// Client talks to one server. It is safe for concurrent use.
type Client struct {
	root      *url.URL
	tokenFile string
	userAgent string
	http      *http.Client
}

// New checks serverURL (the server's root, e.g. https://upkeep.example.com)
// and the token file.
func New(serverURL string, o Options) (*Client, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", serverURL, err)
	}
	if u.User != nil {
		return nil, errors.New("--server carries credentials in the URL; put the token in the file of --token-file instead")
	}
	if err := netpolicy.CheckURL(u); err != nil {
		return nil, fmt.Errorf("--server %s: %w", u.Redacted(), err)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--server %s: give the server's root URL, without a query or fragment", u)
	}
	if o.TokenFile == "" {
		return nil, errors.New("the fleet routes need a bearer token: pass --token-file with a file holding one of the server's --report-token-file tokens (or set UPKEEP_TOKEN_FILE)")
	}
	if _, err := report.ReadTokenFile(o.TokenFile); err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	timeout := cmp.Or(o.Timeout, DefaultTimeout)
	if timeout < 0 {
		return nil, fmt.Errorf("--timeout %s is negative", timeout)
	}
	tlsConf, err := netpolicy.ClientTLS(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.ResponseHeaderTimeout = timeout
	root := *u
	root.Path = strings.TrimRight(root.Path, "/")
	root.RawPath = ""
	return &Client{
		root:      &root,
		tokenFile: o.TokenFile,
		userAgent: cmp.Or(o.UserAgent, "upkeep-cli"),
		http: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}, nil
}

// String is the server's root URL.
func (c *Client) String() string { return c.root.String() }

// Error is an answer other than 2xx.
type Error struct {
	Method, URL string
	Status      int
	// Message is the server's text, short and with the token scrubbed.
	Message string
	// Hint says what to do next.
	Hint string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Status == http.StatusNotFound
}

// do sends one request and decodes a 2xx JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, limit int64, out any) error {
	u := *c.root
	u.Path += path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	token, err := report.ReadTokenFile(c.tokenFile)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w; is the server running there? (--server)", method, u.Redacted(), netpolicy.TransportError(err, token))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		msg := strings.ReplaceAll(strings.TrimSpace(string(raw)), token, "[token]")
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		return &Error{Method: method, URL: u.Redacted(), Status: resp.StatusCode, Message: msg, Hint: c.hint(resp, path)}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("%s %s: the answer is %q, not JSON: is --server an upkeep server (and not a proxy's page)?", method, u.Redacted(), ct)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, u.Redacted(), netpolicy.TransportError(err, token))
	}
	if int64(len(raw)) > limit {
		return fmt.Errorf("%s %s: the answer is larger than %d MiB; refused", method, u.Redacted(), limit>>20)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, u.Redacted(), err)
	}
	return nil
}

// hint is the next step for an error status.
func (c *Client) hint(resp *http.Response, path string) string {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Sprintf("the server does not accept the token in %s: use one of the tokens of the server's --report-token-file (--token-file or UPKEEP_TOKEN_FILE)", c.tokenFile)
	case http.StatusNotFound:
		if strings.HasPrefix(path, "/v1/rollouts/") {
			return "list the channels that have a rollout with `upkeep rollout status` without a channel, or `upkeep fleet`"
		}
		return "the server's fleet routes are disabled: start `upkeep serve` with --report-token-file (and a fleet store, --store), or check --server"
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return fmt.Sprintf("redirects are not followed (they would carry the token elsewhere): pass the URL %q as --server directly", resp.Header.Get("Location"))
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "the server or its fleet store cannot answer now: try again, and see the server's log"
	case http.StatusConflict:
		return "see `upkeep rollout status` for the rollout's state"
	}
	return ""
}

// Page is one answer of GET /v1/fleet.
type Page struct {
	fleet.FleetPage
	After string `json:"after,omitempty"`
}

// FleetPage reads one page of agents: group "" for all, after "" for the
// first page, limit 0 for the server's default.
func (c *Client) FleetPage(ctx context.Context, group, after string, limit int) (Page, error) {
	q := url.Values{}
	if group != "" {
		q.Set("group", group)
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var p Page
	err := c.do(ctx, http.MethodGet, "/v1/fleet", q, nil, MaxFleetPageBody, &p)
	return p, err
}

// Fleet reads every agent (of group, "" for all), page by page; the
// counts and time are the first page's.
func (c *Client) Fleet(ctx context.Context, group string) (report.Fleet, error) {
	first, err := c.FleetPage(ctx, group, "", 0)
	if err != nil {
		return report.Fleet{}, err
	}
	out := first.Fleet
	after := first.After
	for n := 1; after != ""; n++ {
		if n >= MaxPages {
			return report.Fleet{}, fmt.Errorf("GET /v1/fleet: more than %d pages of agents; refused", MaxPages)
		}
		p, err := c.FleetPage(ctx, group, after, 0)
		if err != nil {
			return report.Fleet{}, err
		}
		out.Agents = append(out.Agents, p.Agents...)
		after = p.After
	}
	return out, nil
}

// Counts reads a group's counts only (a one-agent page).
func (c *Client) Counts(ctx context.Context, group string) (report.Counts, error) {
	p, err := c.FleetPage(ctx, group, "", 1)
	return p.Counts, err
}

// Channel is one channel of GET /v1/channels.
type Channel struct {
	Name     string `json:"name"`
	Version  string `json:"version"` // without "v", or "none"
	Critical bool   `json:"critical"`
	Follow   bool   `json:"follow"`
	Withheld string `json:"withheld,omitempty"`
}

// Channels reads the served channels and the revision serving them.
func (c *Client) Channels(ctx context.Context) (revision string, chs []Channel, err error) {
	var ans struct {
		Revision string    `json:"revision"`
		Channels []Channel `json:"channels"`
	}
	err = c.do(ctx, http.MethodGet, "/v1/channels", nil, nil, MaxBody, &ans)
	return ans.Revision, ans.Channels, err
}

// Group is one group of GET /v1/groups.
type Group struct {
	Name     string `json:"name"`
	Channel  string `json:"channel"`
	Timezone string `json:"timezone"`
	Order    int    `json:"order"`
}

// Groups reads the served groups.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	var ans struct {
		Groups []Group `json:"groups"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/groups", nil, nil, MaxBody, &ans)
	return ans.Groups, err
}

// Rollouts reads every channel's current rollout.
func (c *Client) Rollouts(ctx context.Context) ([]fleet.Rollout, error) {
	var ans struct {
		Rollouts []fleet.Rollout `json:"rollouts"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/rollouts", nil, nil, MaxBody, &ans)
	return ans.Rollouts, err
}

// Stage is one stage of a rollout and its agents' progress, as GET
// /v1/rollouts/<channel> counts them.
type Stage struct {
	Index     int      `json:"index"`
	Groups    []string `json:"groups"`
	Implicit  bool     `json:"implicit,omitempty"`
	Canaries  string   `json:"canaries"`
	BakeTime  string   `json:"bakeTime"`
	Status    string   `json:"status"` // done, current or waiting
	Agents    int      `json:"agents"`
	Live      int      `json:"live"`
	OnVersion int      `json:"onVersion"`
	Healthy   int      `json:"healthy"`
	Failed    int      `json:"failed"`
}

// RolloutDetail is GET /v1/rollouts/<channel>.
type RolloutDetail struct {
	fleet.Rollout
	Stages      []Stage            `json:"stages"`
	Transitions []fleet.Transition `json:"transitions"`
}

// Rollout reads one channel's rollout with its stages and its latest
// transitions (0: the server's default number).
func (c *Client) Rollout(ctx context.Context, channel string, transitions int) (RolloutDetail, error) {
	q := url.Values{}
	if transitions > 0 {
		q.Set("transitions", fmt.Sprint(transitions))
	}
	var d RolloutDetail
	err := c.do(ctx, http.MethodGet, "/v1/rollouts/"+channel, q, nil, MaxBody, &d)
	return d, err
}

// Step is the answer of an operator's halt or resume.
type Step struct {
	Rollout    fleet.Rollout    `json:"rollout"`
	Transition fleet.Transition `json:"transition"`
}

// Halt stops channel's rollout: nobody new gets its version.
func (c *Client) Halt(ctx context.Context, channel, note string) (Step, error) {
	return c.operate(ctx, channel, "halt", note)
}

// Resume continues channel's halted rollout.
func (c *Client) Resume(ctx context.Context, channel, note string) (Step, error) {
	return c.operate(ctx, channel, "resume", note)
}

func (c *Client) operate(ctx context.Context, channel, what, note string) (Step, error) {
	var body any
	if note != "" {
		body = struct {
			Note string `json:"note"`
		}{note}
	}
	var s Step
	err := c.do(ctx, http.MethodPost, "/v1/rollouts/"+channel+"/"+what, nil, body, MaxBody, &s)
	return s, err
}
