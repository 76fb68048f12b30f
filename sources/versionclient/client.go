// Package versionclient is the updater's client of a version server: it asks
// for a channel's target version and critical flag (Teleport's protocol, so
// it also talks to Teleport's proxies) and for a group's maintenance windows
// (upkeep's JSON API), and parses every answer strictly, so a captive
// portal's page or a proxy's error page is an error, never a version.
//
// # Base URL
//
// New takes the server's base URL in one of three forms:
//
//   - a server root, https://upkeep.example.com: channels are asked at
//     /v1/webapi/automaticupgrades/channel/<channel>/{version,critical};
//   - a URL already ending in that prefix, as Teleport's updaters are
//     configured (https://proxy.example.com/v1/webapi/automaticupgrades/channel):
//     <channel>/{version,critical} is appended;
//   - a URL ending in /v1, the plain form (https://updates.example.com/v1):
//     /<channel>/{version,critical} is appended.
//
// # Identity and rollouts
//
// With Options.AgentID (and Options.Group) set, every version and critical
// request carries the headers Upkeep-Agent-Id and Upkeep-Group, so that an
// upkeep server running a progressive rollout answers this agent with the
// version its stage and canary status allow. A held-back answer carries
// Upkeep-Rollout: version=17.4.0; state=Canary; stage=1; reason=NotCanary,
// read strictly into Target.Held. A critical "no" for a group in a freeze
// that does not allow critical updates carries Upkeep-Freeze:
// rule=CriticalHeldByFreeze; freeze=year-end; until=2027-01-05T00:00:00Z,
// read strictly into Critical.Held (CriticalAnswer). Teleport's proxies
// send no such header and ignore the identity, so nothing changes against
// them.
//
// Group schedules are always asked at <root>/v1/groups/<group>/schedule,
// and a group's channel at <root>/v1/groups/<group>, where root is the base
// URL without either suffix.
//
// # Transport rules
//
// HTTPS is required unless the host is a loopback address (127.0.0.0/8, ::1,
// localhost); redirects follow the same rule. Every request has a timeout
// (10 s unless configured) and every body is bounded: 4 KiB for version and
// critical, 64 KiB for a group's detail, 1 MiB for schedules. A larger body
// is an error, not truncated.
package versionclient

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/sources/netpolicy"
	"upkeep.dev/upkeep/spec"
)

// Body limits. A body over its limit is refused.
const (
	MaxVersionBody  = 4 << 10
	MaxScheduleBody = schedule.MaxFileSize
	MaxGroupBody    = 64 << 10
)

// DefaultTimeout bounds one request, from dialing to the end of the body.
const DefaultTimeout = 10 * time.Second

// Path prefixes of the two channel URL forms.
const (
	teleportPrefix = "/v1/webapi/automaticupgrades/channel"
	plainPrefix    = "/v1"
)

// Options configure a Client. The zero value is valid.
type Options struct {
	// Timeout bounds each request; 0 means DefaultTimeout.
	Timeout time.Duration
	// Token, when set, is sent as "Authorization: Bearer <Token>". It never
	// appears in errors or String.
	Token string
	// TokenFile names a file holding the token (surrounding white space
	// ignored), read once by New; set Token or TokenFile, not both.
	TokenFile string
	// CAFile is a PEM bundle of the certificate authorities to trust instead
	// of the system's, for a server on a private PKI.
	CAFile string
	// Version is upkeep's own version, sent as User-Agent
	// "upkeep-agent/<Version>" ("devel" when empty).
	Version string
	// AgentID and Group identify the agent to the version server (headers
	// Upkeep-Agent-Id and Upkeep-Group) on version and critical requests;
	// empty ones are not sent. See Identity.
	AgentID string
	Group   string
}

// Identity is who asks: the headers Upkeep-Agent-Id and Upkeep-Group. An
// updater of many agents (the Kubernetes updater) passes one per request.
type Identity struct {
	AgentID string // the agent id its reports carry
	Group   string // the fleet group; "" for none
}

// Header names of the identity and of the rollout answer.
const (
	HeaderAgentID = "Upkeep-Agent-Id"
	HeaderGroup   = "Upkeep-Group"
	HeaderRollout = "Upkeep-Rollout"
	HeaderFreeze  = "Upkeep-Freeze"
)

// Check returns why the identity cannot be sent, or nil: the agent id is
// letters, digits, '.', '_', ':' and '-' (at most 253 bytes), the group a
// fleet repository group name.
func (id Identity) Check() error {
	if id.AgentID != "" {
		if len(id.AgentID) > 253 || !isAlnumByte(id.AgentID[0]) || strings.ContainsFunc(id.AgentID, func(r rune) bool {
			return !(r < 0x80 && (isAlnumByte(byte(r)) || r == '.' || r == '_' || r == ':' || r == '-'))
		}) {
			return fmt.Errorf("agent id %+q: use at most 253 letters, digits, '.', '_', ':' and '-', starting with a letter or digit", id.AgentID)
		}
	}
	if why := spec.NameProblem(id.Group, false); id.Group != "" && why != "" {
		return fmt.Errorf("group %+q: %s", id.Group, why)
	}
	return nil
}

func isAlnumByte(c byte) bool { return alnum(c) || c >= 'A' && c <= 'Z' }

// Client asks one version server. It is safe for concurrent use.
type Client struct {
	root        *url.URL // scheme, host and root path (no trailing slash)
	channelBase string   // escaped path under which "<channel>/version" lives
	http        *http.Client
	token       string
	userAgent   string
	identity    Identity
}

// Target is what a channel offers.
type Target struct {
	// Version is the semver the channel serves, without a leading "v"; ""
	// when None.
	Version string
	// None is true when the server answered "none": the channel offers no
	// version, and the agent should stay where it is.
	None bool
	// Held is set when the server holds this agent back from a rollout in
	// progress (header Upkeep-Rollout): Version is then what the agent may
	// run meanwhile, Held.Version what is rolling out. nil otherwise.
	Held *reconcile.RolloutHold
}

// New checks baseURL and builds a client. It refuses plain http:// to any
// host but loopback, credentials inside the URL, query strings and
// fragments, and an unreadable or empty CAFile.
func New(baseURL string, o Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("version server URL %q: %w", redactURL(baseURL), err)
	}
	if err := netpolicy.CheckURL(u); err != nil {
		return nil, fmt.Errorf("version server URL %q: %w", redactURL(baseURL), err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("version server URL %q carries credentials; pass a token with the token option instead", redactURL(baseURL))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("version server URL %q: a base URL takes no query or fragment", safeURL(u))
	}

	path := strings.TrimRight(u.EscapedPath(), "/")
	root := *u
	root.RawQuery, root.Fragment = "", ""
	var channelBase string
	switch {
	case strings.HasSuffix(path, teleportPrefix):
		channelBase = path
		path = strings.TrimSuffix(path, teleportPrefix)
	case strings.HasSuffix(path, plainPrefix):
		channelBase = path
		path = strings.TrimSuffix(path, plainPrefix)
	default:
		channelBase = path + teleportPrefix
	}
	if err := setEscapedPath(&root, path); err != nil {
		return nil, fmt.Errorf("version server URL %q: %w", safeURL(u), err)
	}

	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("version server timeout %s is negative", timeout)
	}
	token := o.Token
	if o.TokenFile != "" {
		if token != "" {
			return nil, errors.New("version server: set a token or a token file, not both")
		}
		if token, err = readTokenFile(o.TokenFile); err != nil {
			return nil, err
		}
	}
	tlsConf, err := netpolicy.ClientTLS(o.CAFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.ResponseHeaderTimeout = timeout

	id := Identity{AgentID: o.AgentID, Group: o.Group}
	if err := id.Check(); err != nil {
		return nil, fmt.Errorf("version server identity: %w", err)
	}
	version := o.Version
	if version == "" {
		version = "devel"
	}
	c := &Client{
		root:        &root,
		channelBase: channelBase,
		token:       token,
		userAgent:   "upkeep-agent/" + version,
		identity:    id,
	}
	c.http = &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("stopped after 5 redirects")
			}
			if err := netpolicy.CheckURL(req.URL); err != nil {
				return fmt.Errorf("redirect to %s refused: %w", safeURL(req.URL), err)
			}
			return nil
		},
	}
	return c, nil
}

// String names the server without credentials.
func (c *Client) String() string { return safeURL(c.root) }

// Target asks which version channel offers, as the client's own identity
// (Options.AgentID, Options.Group). The body, trimmed of spaces and
// newlines, must be "none" or a strict semver with an optional leading "v";
// an Upkeep-Rollout header must parse (ParseRollout).
func (c *Client) Target(ctx context.Context, channel string) (Target, error) {
	return c.TargetAs(ctx, channel, c.identity)
}

// TargetAs is Target asked as id, for an updater of many agents.
func (c *Client) TargetAs(ctx context.Context, channel string, id Identity) (Target, error) {
	if err := id.Check(); err != nil {
		return Target{}, err
	}
	u, err := c.channelURL(channel, "version")
	if err != nil {
		return Target{}, err
	}
	body, hdr, err := c.getAs(ctx, u, "text/plain", MaxVersionBody, id)
	if err != nil {
		return Target{}, err
	}
	t, err := ParseVersion(body)
	if err != nil {
		return Target{}, fmt.Errorf("GET %s: %w", safeURL(u), err)
	}
	if t.Held, err = ParseRollout(hdr.Values(HeaderRollout)); err != nil {
		return Target{}, fmt.Errorf("GET %s: header %s: %w", safeURL(u), HeaderRollout, err)
	}
	return t, nil
}

// Critical asks whether channel's update is critical, as the client's own
// identity. The body, trimmed, must be yes, true, no or false in any case.
// It is the server's answer: false while a freeze holds the update back
// (see CriticalAnswer).
func (c *Client) Critical(ctx context.Context, channel string) (bool, error) {
	a, err := c.CriticalAnswerAs(ctx, channel, c.identity)
	return a.Critical, err
}

// CriticalAs is Critical asked as id.
func (c *Client) CriticalAs(ctx context.Context, channel string, id Identity) (bool, error) {
	a, err := c.CriticalAnswerAs(ctx, channel, id)
	return a.Critical, err
}

// Critical is a channel's critical answer.
type Critical struct {
	// Critical is the body: yes or no.
	Critical bool
	// Held is set when the server answered no because the asking group is
	// in a freeze that does not allow critical updates (header
	// Upkeep-Freeze, ParseFreeze): the channel's update is critical, and
	// due when the freeze ends. nil from Teleport's proxies and outside
	// such freezes.
	Held *reconcile.FreezeHold
}

// CriticalAnswer is Critical with the server's freeze hold, as the
// client's own identity (the group is what the server holds by).
func (c *Client) CriticalAnswer(ctx context.Context, channel string) (Critical, error) {
	return c.CriticalAnswerAs(ctx, channel, c.identity)
}

// CriticalAnswerAs is CriticalAnswer asked as id. An Upkeep-Freeze header
// must parse (ParseFreeze) and comes only with a "no".
func (c *Client) CriticalAnswerAs(ctx context.Context, channel string, id Identity) (Critical, error) {
	if err := id.Check(); err != nil {
		return Critical{}, err
	}
	u, err := c.channelURL(channel, "critical")
	if err != nil {
		return Critical{}, err
	}
	body, hdr, err := c.getAs(ctx, u, "text/plain", MaxVersionBody, id)
	if err != nil {
		return Critical{}, err
	}
	crit, err := ParseCritical(body)
	if err != nil {
		return Critical{}, fmt.Errorf("GET %s: %w", safeURL(u), err)
	}
	held, err := ParseFreeze(hdr.Values(HeaderFreeze))
	if err != nil {
		return Critical{}, fmt.Errorf("GET %s: header %s: %w", safeURL(u), HeaderFreeze, err)
	}
	if held != nil && crit {
		return Critical{}, fmt.Errorf("GET %s: header %s names a freeze holding the update back, but the body says yes: one of them is wrong", safeURL(u), HeaderFreeze)
	}
	return Critical{Critical: crit, Held: held}, nil
}

// MaxFreezeHeader bounds the Upkeep-Freeze header: a 253-byte freeze name
// and a timestamp fit well within it.
const MaxFreezeHeader = 512

// ParseFreeze reads the Upkeep-Freeze header's values strictly: none is no
// hold; one value is "rule=<Rule>; freeze=<name>; until=<RFC 3339>" (Rule
// a CamelCase word, name a fleet repository name), each key once. Other
// keys of lower-case letters are ignored, so a newer server may add some.
// Anything else is an error: a garbled hold must not be read as no hold,
// nor a critical "no" as a plain one.
func ParseFreeze(values []string) (*reconcile.FreezeHold, error) {
	p, err := holdParams(values, MaxFreezeHeader, "rule=CriticalHeldByFreeze; freeze=year-end; until=2027-01-05T00:00:00Z",
		[]string{"rule", "freeze", "until"}, nil)
	if p == nil || err != nil {
		return nil, err
	}
	h := &reconcile.FreezeHold{Rule: p["rule"], Freeze: p["freeze"]}
	if !camelWord(h.Rule) {
		return nil, fmt.Errorf("rule %+q is not a CamelCase word such as CriticalHeldByFreeze", h.Rule)
	}
	if !spec.ValidName(h.Freeze, false) {
		return nil, fmt.Errorf("freeze %+q: %s", h.Freeze, spec.NameProblem(h.Freeze, false))
	}
	t, err := time.Parse(time.RFC3339, p["until"])
	if err != nil {
		return nil, fmt.Errorf("until %+q is not an RFC 3339 time such as 2027-01-05T00:00:00Z", p["until"])
	}
	h.Until = t.UTC()
	return h, nil
}

// Schedule asks for group's maintenance windows, as the server computed
// them (JSON {"windows":[{"start":..,"stop":..}]}, see schedule.ParseJSON).
func (c *Client) Schedule(ctx context.Context, group string) ([]calendar.Interval, error) {
	seg, err := escapeSegments(group, "group")
	if err != nil {
		return nil, err
	}
	u := *c.root
	if err := setEscapedPath(&u, u.EscapedPath()+"/v1/groups/"+seg+"/schedule"); err != nil {
		return nil, err
	}
	body, err := c.get(ctx, &u, "application/json", MaxScheduleBody)
	if err != nil {
		return nil, err
	}
	ws, err := schedule.ParseJSON(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: not a schedule: %w (body starts %s)", safeURL(&u), err, bodyPrefix(body))
	}
	return ws, nil
}

// GroupChannel asks which channel group follows, from the group's detail
// document (upkeep's JSON API, not Teleport's). The answer must be a JSON
// object naming the group asked for and a well-formed channel name.
func (c *Client) GroupChannel(ctx context.Context, group string) (string, error) {
	seg, err := escapeSegments(group, "group")
	if err != nil {
		return "", err
	}
	if strings.Contains(group, "/") {
		return "", fmt.Errorf("group name %q has a '/'; group names are one segment", group)
	}
	u := *c.root
	if err := setEscapedPath(&u, u.EscapedPath()+"/v1/groups/"+seg); err != nil {
		return "", err
	}
	body, err := c.get(ctx, &u, "application/json", MaxGroupBody)
	if err != nil {
		return "", fmt.Errorf("asking the channel of group %q: %w", group, err)
	}
	channel, err := ParseGroupChannel(body, group)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", safeURL(&u), err)
	}
	return channel, nil
}

// ParseGroupChannel reads a group's detail document and returns its
// channel. The document must name group and a channel whose segments are
// lower-case letters, digits, '.' and '-'.
func ParseGroupChannel(body []byte, group string) (string, error) {
	var doc struct {
		Name    *string `json:"name"`
		Channel *string `json:"channel"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("not a group document: %v (body starts %s)", err, bodyPrefix(body))
	}
	switch {
	case doc.Name == nil || doc.Channel == nil:
		return "", fmt.Errorf(`not a group document: want "name" and "channel" (body starts %s)`, bodyPrefix(body))
	case *doc.Name != group:
		return "", fmt.Errorf("the server answered for group %+q, not %q", *doc.Name, group)
	case !validChannel(*doc.Channel):
		return "", fmt.Errorf("group %q: channel %+q is not a channel name such as stable/cloud", group, *doc.Channel)
	}
	return *doc.Channel, nil
}

// validChannel is the fleet repository's rule for channel names, its
// length limit included (spec.ValidName).
func validChannel(s string) bool {
	return spec.ValidName(s, true)
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func (c *Client) channelURL(channel, leaf string) (*url.URL, error) {
	seg, err := escapeSegments(channel, "channel")
	if err != nil {
		return nil, err
	}
	u := *c.root
	if err := setEscapedPath(&u, c.channelBase+"/"+seg+"/"+leaf); err != nil {
		return nil, err
	}
	return &u, nil
}

// get fetches u and returns its body when the status is 200 and the body
// fits in limit bytes.
func (c *Client) get(ctx context.Context, u *url.URL, accept string, limit int64) ([]byte, error) {
	body, _, err := c.getAs(ctx, u, accept, limit, Identity{})
	return body, err
}

// getAs is get sending id's headers, and returns the answer's headers too.
func (c *Client) getAs(ctx context.Context, u *url.URL, accept string, limit int64, id Identity) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", safeURL(u), err)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.userAgent)
	if id.AgentID != "" {
		req.Header.Set(HeaderAgentID, id.AgentID)
	}
	if id.Group != "" {
		req.Header.Set(HeaderGroup, id.Group)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		err = netpolicy.TransportError(err, c.token)
		var unknownCA x509.UnknownAuthorityError
		if errors.As(err, &unknownCA) {
			return nil, nil, fmt.Errorf("GET %s: %w (if the server uses a private CA, point the CA file option at its certificate)", safeURL(u), err)
		}
		return nil, nil, fmt.Errorf("GET %s: %w", safeURL(u), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: reading the body: %w", safeURL(u), netpolicy.TransportError(err, c.token))
	}
	if resp.StatusCode != http.StatusOK {
		hint := ""
		switch resp.StatusCode {
		case http.StatusNotFound:
			hint = " (check the channel or group name and the server URL)"
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (check the token)"
		}
		return nil, nil, fmt.Errorf("GET %s: status %s%s, body starts %s", safeURL(u), resp.Status, hint, bodyPrefix(body))
	}
	if int64(len(body)) > limit {
		return nil, nil, fmt.Errorf("GET %s: body is larger than %d bytes, which no valid answer is; is a proxy answering? body starts %s",
			safeURL(u), limit, bodyPrefix(body))
	}
	return body, resp.Header, nil
}

// ParseVersion reads a version body: trimmed of white space, "none" means no
// version; otherwise an optional "v" then a strict semver
// (MAJOR.MINOR.PATCH with optional -prerelease and +build).
func ParseVersion(body []byte) (Target, error) {
	s := strings.TrimSpace(string(body))
	if s == "none" {
		return Target{None: true}, nil
	}
	if s == "" {
		return Target{}, errors.New(`empty version body, want "v<semver>" or "none"`)
	}
	v, err := semver.StrictNewVersion(strings.TrimPrefix(s, "v"))
	if err != nil {
		return Target{}, fmt.Errorf(`not a version: body starts %s, want "v<semver>" or "none" (%v)`, bodyPrefix(body), err)
	}
	return Target{Version: v.String()}, nil
}

// MaxRolloutHeader bounds the Upkeep-Rollout header; the longest valid
// one is far shorter.
const MaxRolloutHeader = 512

// ParseRollout reads the Upkeep-Rollout header's values strictly: none is
// no hold (Teleport's proxies, or an agent the rollout has reached); one
// value is "version=<semver>; state=<State>; stage=<n>" with an optional
// "; reason=<Reason>" (State and Reason CamelCase words, n from 0 to 999),
// each key once. Other keys of lower-case letters are ignored, so a newer
// server may add some. Anything else is an error: a garbled hold must not
// be read as no hold.
func ParseRollout(values []string) (*reconcile.RolloutHold, error) {
	p, err := holdParams(values, MaxRolloutHeader, "version=17.4.0; state=Canary; stage=1",
		[]string{"version", "state", "stage"}, []string{"reason"})
	if p == nil || err != nil {
		return nil, err
	}
	h := &reconcile.RolloutHold{State: p["state"], Reason: p["reason"]}
	sv, err := semver.StrictNewVersion(strings.TrimPrefix(p["version"], "v"))
	if err != nil {
		return nil, fmt.Errorf("version %+q is not a semantic version", p["version"])
	}
	h.Version = sv.String()
	if !camelWord(h.State) {
		return nil, fmt.Errorf("state %+q is not a CamelCase word such as Canary", h.State)
	}
	stage := p["stage"]
	n, err := strconv.Atoi(stage)
	if err != nil || n < 0 || n > 999 || stage != strconv.Itoa(n) {
		return nil, fmt.Errorf("stage %+q is not a number from 0 to 999", stage)
	}
	h.Stage = n
	if _, ok := p["reason"]; ok && !camelWord(h.Reason) {
		return nil, fmt.Errorf("reason %+q is not a CamelCase word such as NotCanary", h.Reason)
	}
	return h, nil
}

// holdParams reads the values of a hold header (Upkeep-Rollout,
// Upkeep-Freeze): none is no hold (nil, nil); one value of at most max
// bytes holds key=value pairs separated by ';', each key once, every
// required key present. Other keys must be lower-case words and are
// dropped, so a newer server may add some.
func holdParams(values []string, max int, example string, required, optional []string) (map[string]string, error) {
	switch len(values) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("sent %d times, want once", len(values))
	}
	v := values[0]
	if len(v) > max {
		return nil, fmt.Errorf("%d bytes, at most %d allowed", len(v), max)
	}
	p := map[string]string{}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(v, ";") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || key == "" || val == "" || strings.ContainsAny(val, " \t\"") {
			return nil, fmt.Errorf("%s: want key=value pairs separated by ';', such as %s", bodyPrefix([]byte(v)), example)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %+q given twice", key)
		}
		seen[key] = true
		switch {
		case slices.Contains(required, key), slices.Contains(optional, key):
			p[key] = val
		case strings.ContainsFunc(key, func(r rune) bool { return r < 'a' || r > 'z' }):
			return nil, fmt.Errorf("key %+q is not a lower-case word", key)
		}
	}
	for _, k := range required {
		if !seen[k] {
			return nil, fmt.Errorf("%s: %s is required", bodyPrefix([]byte(v)), k)
		}
	}
	return p, nil
}

// camelWord is a CamelCase word of at most 64 letters and digits.
func camelWord(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnumByte(s[i]) {
			return false
		}
	}
	return true
}

// ParseCritical reads a critical body: yes/true or no/false in any case,
// surrounding white space ignored.
func ParseCritical(body []byte) (bool, error) {
	s := strings.TrimSpace(string(body))
	switch {
	case strings.EqualFold(s, "yes"), strings.EqualFold(s, "true"):
		return true, nil
	case strings.EqualFold(s, "no"), strings.EqualFold(s, "false"):
		return false, nil
	}
	return false, fmt.Errorf(`not a critical flag: body starts %s, want "yes" or "no"`, bodyPrefix(body))
}

// bodyPrefix quotes the first bytes of a body for an error: at most 64
// bytes, cut at a rune boundary, non-printable and non-ASCII escaped, so a
// hostile body cannot forge log lines or flood a terminal.
func bodyPrefix(body []byte) string {
	const max = 64
	if len(body) == 0 {
		return `"" (empty)`
	}
	cut := len(body)
	if cut > max {
		cut = max
		for cut > 0 && !utf8.RuneStart(body[cut]) {
			cut--
		}
	}
	q := fmt.Sprintf("%+q", body[:cut])
	if cut < len(body) {
		q += fmt.Sprintf(" (%d bytes in all)", len(body))
	}
	return q
}

// escapeSegments checks a slash-separated name and path-escapes each
// segment, so "stable/cloud" stays two segments and nothing in a segment
// can add one.
func escapeSegments(name, what string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%s name is empty", what)
	}
	segs := strings.Split(name, "/")
	for i, s := range segs {
		switch {
		case s == "":
			return "", fmt.Errorf("%s name %q has an empty segment", what, name)
		case s == "." || s == "..":
			return "", fmt.Errorf("%s name %q has a %q segment", what, name, s)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				return "", fmt.Errorf("%s name %+q has a control character", what, name)
			}
		}
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/"), nil
}

// setEscapedPath sets u's path from its escaped form.
func setEscapedPath(u *url.URL, escaped string) error {
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return err
	}
	u.Path, u.RawPath = p, escaped
	return nil
}

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the token file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxVersionBody+1))
	if err != nil {
		return "", fmt.Errorf("reading the token file: %w", err)
	}
	if len(data) > MaxVersionBody {
		return "", fmt.Errorf("token file %s is larger than %d bytes; is it the right file?", path, MaxVersionBody)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	if strings.ContainsAny(token, "\r\n") {
		return "", fmt.Errorf("token file %s holds more than one line; it must hold only the token", path)
	}
	return token, nil
}

// redactURL hides user information in a URL that may not parse.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return safeURL(u)
	}
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "[redacted]" + raw[i:]
		}
	}
	return raw
}

// safeURL prints u without any user information.
func safeURL(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = nil
	return c.String()
}
