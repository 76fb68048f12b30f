// Package simfleet is a simulated fleet for end-to-end tests: hundreds of
// updaters, one goroutine each, speaking the real HTTP API of `upkeep
// serve` (version answers with identity headers, concurrency leases,
// reports with outcomes). Installs are simulated: a version named broken
// rolls back. Everything stays on loopback, every call has a timeout, and a
// simulation stops by itself after its Duration. It keeps its own log of
// what every agent was answered and did, so tests can check the server's
// records against what the fleet saw.
package simfleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBody bounds every answer read; the API's answers are small.
const maxBody = 1 << 20

// Client speaks the version server's API as one updater would. It is safe
// for concurrent use.
type Client struct {
	Token string // bearer token of reports and leases
	HTTP  *http.Client
}

// NewClient returns a client with a transport sized for many agents on one
// loopback server, and a timeout on every call.
func NewClient(token string, agents int) *Client {
	tr := &http.Transport{
		MaxIdleConns:        agents + 16,
		MaxIdleConnsPerHost: agents + 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{Token: token, HTTP: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

// Answer is a version answer.
type Answer struct {
	Version string // trimmed body, without a leading "v"
	// Rollout is the Upkeep-Rollout header of a held-back answer.
	Rollout string
}

// StatusError is an answer with an unexpected status.
type StatusError struct {
	Method, URL string
	Code        int
	Body        string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Code, strings.TrimSpace(e.Body))
}

func (c *Client) do(ctx context.Context, method, u string, header http.Header, body any) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// Version asks base (the server root) for channel's version as agent of group.
func (c *Client) Version(ctx context.Context, base, channel, agent, group string) (Answer, error) {
	u := base + "/v1/" + channel + "/version"
	h := http.Header{}
	h.Set("Upkeep-Agent-Id", agent)
	if group != "" {
		h.Set("Upkeep-Group", group)
	}
	code, hdr, body, err := c.do(ctx, http.MethodGet, u, h, nil)
	if err != nil {
		return Answer{}, err
	}
	if code != http.StatusOK {
		return Answer{}, &StatusError{http.MethodGet, u, code, string(body)}
	}
	return Answer{
		Version: strings.TrimPrefix(strings.TrimSpace(string(body)), "v"),
		Rollout: hdr.Get("Upkeep-Rollout"),
	}, nil
}

// LeaseRequest is the body of POST /v1/leases.
type LeaseRequest struct {
	AgentID string `json:"agentId"`
	Group   string `json:"group"`
	Channel string `json:"channel"`
	Version string `json:"version"`
	// TTL, when set, asks for a lease shorter than the server's default
	// (a Go duration such as "2s").
	TTL string `json:"ttl,omitempty"`
}

// LeaseAnswer is POST /v1/leases's answer, granted (200) or refused (409).
type LeaseAnswer struct {
	Granted    bool      `json:"granted"`
	ExpiresAt  time.Time `json:"expiresAt"`
	Holders    int       `json:"holders"`
	Max        int       `json:"max"`
	RetryAfter time.Time `json:"retryAfter"`
}

// AcquireLease asks base for a place among req.Group's updating agents.
func (c *Client) AcquireLease(ctx context.Context, base string, req LeaseRequest) (LeaseAnswer, error) {
	u := base + "/v1/leases"
	code, _, body, err := c.do(ctx, http.MethodPost, u, nil, req)
	if err != nil {
		return LeaseAnswer{}, err
	}
	if code != http.StatusOK && code != http.StatusConflict {
		return LeaseAnswer{}, &StatusError{http.MethodPost, u, code, string(body)}
	}
	var a LeaseAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return LeaseAnswer{}, fmt.Errorf("POST %s: %d %q: %w", u, code, body, err)
	}
	if a.Granted != (code == http.StatusOK) {
		return a, fmt.Errorf("POST %s: status %d but granted=%t: %s", u, code, a.Granted, body)
	}
	return a, nil
}

// ReleaseLease gives agent's lease in group back; held false when the server
// knew none (404).
func (c *Client) ReleaseLease(ctx context.Context, base, group, agent string) (held bool, err error) {
	u := base + "/v1/leases/" + url.PathEscape(group) + "/" + url.PathEscape(agent)
	code, _, body, err := c.do(ctx, http.MethodDelete, u, nil, nil)
	if err != nil {
		return false, err
	}
	switch code {
	case http.StatusOK, http.StatusNoContent:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, &StatusError{http.MethodDelete, u, code, string(body)}
}

// Report is the body of POST /v1/reports (reconcile/report.Report and the
// rollout's outcome). It is spelled out here so that the test checks the
// wire, not a shared Go type.
type Report struct {
	AgentID        string    `json:"agentId"`
	Group          string    `json:"group"`
	Channel        string    `json:"channel"`
	Kind           string    `json:"kind"`
	Hostname       string    `json:"hostname,omitempty"`
	CurrentVersion string    `json:"currentVersion"`
	TargetVersion  string    `json:"targetVersion"`
	Health         string    `json:"health"`
	Action         string    `json:"action"`
	Rule           string    `json:"rule"`
	Reason         string    `json:"reason"`
	Message        string    `json:"message"`
	Outcome        string    `json:"outcome,omitempty"`
	UpdaterVersion string    `json:"updaterVersion"`
	Time           time.Time `json:"time"`
}

// Outcomes of an update, as reports carry them.
const (
	OutcomeUpdated    = "updated"
	OutcomeRolledBack = "rolledBack"
)

// Report posts r to base.
func (c *Client) Report(ctx context.Context, base string, r Report) error {
	u := base + "/v1/reports"
	code, _, body, err := c.do(ctx, http.MethodPost, u, nil, r)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return &StatusError{http.MethodPost, u, code, string(body)}
	}
	return nil
}

// GetJSON reads base+path into v (an operator's read, with the token).
func (c *Client) GetJSON(ctx context.Context, base, path string, v any) error {
	u := base + path
	code, _, body, err := c.do(ctx, http.MethodGet, u, nil, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return &StatusError{http.MethodGet, u, code, string(body)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w: %.300s", u, err, body)
	}
	return nil
}

// Post sends an operator's POST (no body) and returns its status and body.
func (c *Client) Post(ctx context.Context, base, path string) (int, string, error) {
	u := base + path
	code, _, body, err := c.do(ctx, http.MethodPost, u, nil, nil)
	return code, string(body), err
}

// isDown says err means the server could not be reached (so another
// replica should be tried), rather than that it answered.
func isDown(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusServiceUnavailable || se.Code == http.StatusBadGateway
	}
	return err != nil && !errors.Is(err, context.Canceled)
}
