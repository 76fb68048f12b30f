package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/sources/netpolicy"
)

// Concurrency leases (FleetLock semantics): before an update an updater asks
// the server for a place among its group's updating agents, and gives it
// back after the update or its rollback. The server caps the places at the
// group's maxConcurrent; a lease not given back expires (an updater that
// died mid-update frees its place after the server's TTL). The routes take
// the same bearer token as reports.

// LeasesPath is the leases route; a lease is released at
// LeasesPath/<group>/<agentId>, with NoGroup for agents without a group.
const LeasesPath = "/v1/leases"

// ErrNoLeases: the server has no leases route (404): reports are off there,
// or it is an older upkeep or a Teleport proxy. Updaters go ahead without a
// lease and say so.
var ErrNoLeases = errors.New("the server keeps no concurrency leases (404 on " + LeasesPath + ")")

// LeaseRequest is the body of POST /v1/leases.
type LeaseRequest struct {
	AgentID string `json:"agentId"`
	Group   string `json:"group"` // "" for an agent without a group
	Channel string `json:"channel"`
	Version string `json:"version"` // the version the agent is about to install
}

// LeaseAnswer is the server's answer to a lease request.
type LeaseAnswer struct {
	Granted   bool
	ExpiresAt time.Time // when granted; zero if the server did not say
	// Holders and Max are the group's leases and its maxConcurrent, when refused.
	Holders, Max int
	// RetryAfter is when the earliest holder's lease expires, when refused;
	// zero when the server did not say.
	RetryAfter time.Time
}

// wireLease is the JSON of both answers. retryAfter is an RFC 3339 time or
// a number of seconds; either is accepted.
type wireLease struct {
	Granted    *bool           `json:"granted"`
	ExpiresAt  string          `json:"expiresAt"`
	Holders    int             `json:"holders"`
	Max        int             `json:"max"`
	RetryAfter json.RawMessage `json:"retryAfter"`
}

// Acquire asks for a lease. A 200 answer is a grant, a 409 a refusal (not an
// error); a 404 is ErrNoLeases; anything else is an error naming the status.
func (c *Client) Acquire(ctx context.Context, req LeaseRequest) (LeaseAnswer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return LeaseAnswer{}, fmt.Errorf("encoding the lease request: %w", err)
	}
	u := c.root.JoinPath(LeasesPath)
	status, answer, hdr, err := c.do(ctx, http.MethodPost, u, body)
	if err != nil {
		return LeaseAnswer{}, err
	}
	switch status {
	case http.StatusOK, http.StatusConflict:
		a, err := parseLeaseAnswer(answer, status == http.StatusOK, hdr, time.Now())
		if err != nil {
			return LeaseAnswer{}, fmt.Errorf("POST %s: %d answer: %w", u, status, err)
		}
		return a, nil
	case http.StatusNotFound:
		return LeaseAnswer{}, ErrNoLeases
	}
	return LeaseAnswer{}, c.statusError(http.MethodPost, u, status, answer, hdr)
}

// Release gives the agent's lease back. An agent that holds none (its lease
// expired, or the server keeps none) is not an error.
func (c *Client) Release(ctx context.Context, group, agentID string) error {
	if group == "" {
		group = NoGroup
	}
	u := c.root.JoinPath(LeasesPath, url.PathEscape(group), url.PathEscape(agentID))
	status, answer, hdr, err := c.do(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	if status/100 == 2 || status == http.StatusNotFound {
		return nil
	}
	return c.statusError(http.MethodDelete, u, status, answer, hdr)
}

// parseLeaseAnswer reads a 200 (granted) or 409 (refused) body strictly:
// the granted field must agree with the status.
func parseLeaseAnswer(body []byte, ok bool, hdr http.Header, now time.Time) (LeaseAnswer, error) {
	var w wireLease
	if err := json.Unmarshal(body, &w); err != nil {
		return LeaseAnswer{}, fmt.Errorf("not a lease answer: %v (body starts %s)", err, quoteMax(string(body), 64))
	}
	if w.Granted == nil || *w.Granted != ok {
		return LeaseAnswer{}, fmt.Errorf(`not a lease answer: want "granted": %t (body starts %s)`, ok, quoteMax(string(body), 64))
	}
	a := LeaseAnswer{Granted: ok, Holders: w.Holders, Max: w.Max}
	if w.Holders < 0 || w.Max < 0 {
		return LeaseAnswer{}, fmt.Errorf("holders %d and max %d must not be negative", w.Holders, w.Max)
	}
	if w.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339, w.ExpiresAt)
		if err != nil {
			return LeaseAnswer{}, fmt.Errorf("expiresAt %s is not an RFC 3339 time", quote(w.ExpiresAt))
		}
		a.ExpiresAt = t
	}
	if ok {
		return a, nil
	}
	t, err := retryAfter(w.RetryAfter, hdr.Get("Retry-After"), now)
	if err != nil {
		return LeaseAnswer{}, err
	}
	a.RetryAfter = t
	return a, nil
}

// maxRetryAfter bounds a refusal's wait: a server's clock or bug must not
// park an updater for days. The lease TTL is 30 minutes by default.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads the body's retryAfter (an RFC 3339 time or seconds), or
// else the Retry-After header's seconds; zero when neither is given.
func retryAfter(raw json.RawMessage, header string, now time.Time) (time.Time, error) {
	var t time.Time
	switch s := strings.TrimSpace(string(raw)); {
	case s == "" || s == "null":
		if header == "" {
			return time.Time{}, nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(header))
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("Retry-After header %s is not a number of seconds", quote(header))
		}
		t = now.Add(time.Duration(n) * time.Second)
	case s[0] == '"':
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return time.Time{}, fmt.Errorf("retryAfter: %v", err)
		}
		v, err := time.Parse(time.RFC3339, str)
		if err != nil {
			return time.Time{}, fmt.Errorf("retryAfter %s is not an RFC 3339 time or a number of seconds", quote(str))
		}
		t = v
	default:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n < 0 || n > maxRetryAfter.Seconds() {
			return time.Time{}, fmt.Errorf("retryAfter %s is not an RFC 3339 time or a number of seconds up to %d", quote(s), int(maxRetryAfter.Seconds()))
		}
		t = now.Add(time.Duration(n * float64(time.Second)))
	}
	if t.After(now.Add(maxRetryAfter)) {
		t = now.Add(maxRetryAfter)
	}
	return t, nil
}

// LeaseInput turns Acquire's answer into the decision chain's input.
// ErrNoLeases is LeaseUnsupported; any other error is LeaseFailed.
func LeaseInput(group string, a LeaseAnswer, err error) reconcile.Lease {
	l := reconcile.Lease{Group: group}
	switch {
	case errors.Is(err, ErrNoLeases):
		l.State = reconcile.LeaseUnsupported
	case err != nil:
		l.State, l.Err = reconcile.LeaseFailed, err
	case a.Granted:
		l.State = reconcile.LeaseGranted
	default:
		l.State, l.Holders, l.Max, l.RetryAt = reconcile.LeaseRefused, a.Holders, a.Max, a.RetryAfter
	}
	return l
}

// do sends one authenticated request and returns the status and the
// answer, read up to maxAnswer bytes. Errors name the URL, never the token.
func (c *Client) do(ctx context.Context, method string, u *url.URL, body []byte) (int, []byte, http.Header, error) {
	token, err := readToken(c.tokenFile)
	if err != nil {
		return 0, nil, nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, u, netpolicy.TransportError(err, token))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: reading the answer: %w", method, u, netpolicy.TransportError(err, token))
	}
	// The answer is the server's: scrub it, in case it echoes the header.
	return resp.StatusCode, []byte(strings.ReplaceAll(string(answer), token, "[token]")), resp.Header, nil
}

// statusError names an unexpected status with a hint of what to check.
func (c *Client) statusError(method string, u *url.URL, status int, answer []byte, hdr http.Header) error {
	hint := ""
	switch status {
	case http.StatusUnauthorized:
		hint = "; the server does not accept the token: check the token file against the server's --report-token-file"
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		hint = fmt.Sprintf("; redirects are not followed (they would carry the token elsewhere): configure the URL %q directly", hdr.Get("Location"))
	case http.StatusServiceUnavailable:
		hint = "; the server cannot answer now: the updater asks again later"
	}
	return fmt.Errorf("%s %s: %d %s: %s%s", method, u, status, http.StatusText(status), quoteMax(strings.TrimSpace(string(answer)), 512), hint)
}
