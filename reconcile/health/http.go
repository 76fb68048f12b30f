package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"upkeep.dev/upkeep/sources/netpolicy"
)

// DefaultHTTPTimeout bounds one HTTP probe.
const DefaultHTTPTimeout = 5 * time.Second

// maxHTTPBody is how much of a health response is read.
const maxHTTPBody = 4 << 10

// HTTPCheck asks an HTTP endpoint, such as Teleport's diagnostic
// /readyz, and expects a status (200 by default). Redirects are not
// followed: a redirect is the answer. Proxies from the environment are not
// used: the check talks to the agent directly.
type HTTPCheck struct {
	URL          string
	ExpectStatus int
	client       *http.Client
	timeout      time.Duration
}

// NewHTTPCheck checks rawURL (https anywhere, plain http only to loopback)
// and returns its check. expectStatus 0 means 200; timeout 0 means
// DefaultHTTPTimeout.
func NewHTTPCheck(rawURL string, expectStatus int, timeout time.Duration) (*HTTPCheck, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("health HTTP check: %w", err)
	}
	switch {
	case u.Host == "":
		return nil, fmt.Errorf("health HTTP check %q: no host", rawURL)
	case u.Scheme == "https":
	case u.Scheme == "http":
		if !netpolicy.IsLoopback(u.Hostname()) {
			return nil, fmt.Errorf("health HTTP check %q: plain http:// to %q is refused: use https:// (plain http is allowed only to loopback addresses)", redact(rawURL), u.Hostname())
		}
	default:
		return nil, fmt.Errorf("health HTTP check %q: scheme %q is not supported: use http:// on loopback or https://", redact(rawURL), u.Scheme)
	}
	if expectStatus == 0 {
		expectStatus = http.StatusOK
	}
	if expectStatus < 100 || expectStatus > 599 {
		return nil, fmt.Errorf("health HTTP check %q: expected status %d is not an HTTP status", redact(rawURL), expectStatus)
	}
	if timeout < 0 {
		return nil, fmt.Errorf("health HTTP check %q: timeout %s is negative", redact(rawURL), timeout)
	}
	if timeout == 0 {
		timeout = DefaultHTTPTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DisableKeepAlives = true // probes are seconds apart; a stale connection would hide a restart
	return &HTTPCheck{
		URL:          rawURL,
		ExpectStatus: expectStatus,
		timeout:      timeout,
		client: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}, nil
}

// Name is "http <URL>".
func (c *HTTPCheck) Name() string { return "http " + redact(c.URL) }

// Probe sends one GET.
func (c *HTTPCheck) Probe(ctx context.Context) Observation {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return Observation{Status: Unknown, Detail: err.Error()}
	}
	req.Header.Set("User-Agent", "upkeep-agent-health")
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Observation{Status: Unknown, Detail: "cancelled"}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return Observation{Status: Unhealthy, Detail: fmt.Sprintf("no answer within %s", c.timeout)}
		}
		return Observation{Status: Unhealthy, Detail: err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	if resp.StatusCode != c.ExpectStatus {
		detail := fmt.Sprintf("status %s, want %d", resp.Status, c.ExpectStatus)
		if s := strings.TrimSpace(string(body)); s != "" {
			detail += ", body " + fmt.Sprintf("%+q", truncate(s, 120))
		}
		return Observation{Status: Unhealthy, Detail: detail}
	}
	return Observation{Status: Healthy, Detail: "status " + resp.Status}
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = nil
	return u.String()
}
