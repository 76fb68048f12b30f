package report

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
	"os"
	"strings"
	"time"

	"upkeep.dev/upkeep/sources/netpolicy"
)

// DefaultClientTimeout bounds one Send, from dialing to the end of the answer.
const DefaultClientTimeout = 10 * time.Second

// maxAnswer bounds how much of the server's answer is read; it is only
// ever a short text.
const maxAnswer = 4 << 10

// Path of the reports route, and the suffixes an updater's version server
// URL may carry (see sources/versionclient), which are dropped so the same
// URL can be used for both.
const (
	ReportsPath    = "/v1/reports"
	teleportSuffix = "/v1/webapi/automaticupgrades/channel"
	plainSuffix    = "/v1"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// TokenFile holds the bearer token (surrounding white space ignored).
	// It is read again on every Send, so a rotated token (a re-mounted
	// Kubernetes Secret, a rewritten file) is used without a restart.
	TokenFile string
	// CAFile is a PEM bundle of the authorities to trust instead of the
	// system's, for a server on a private PKI.
	CAFile string
	// Timeout bounds each Send; 0 means DefaultClientTimeout.
	Timeout time.Duration
	// UserAgent is sent as User-Agent; default "upkeep-updater".
	UserAgent string
}

// Client sends reports to one server. It is safe for concurrent use.
type Client struct {
	url       *url.URL // the reports route
	root      *url.URL // the server root, for the leases routes
	tokenFile string
	userAgent string
	http      *http.Client
}

// NewClient checks baseURL (the server root, or the updater's version server
// URL) and the token file. It refuses plain http:// to any host but
// loopback, credentials in the URL, queries and fragments.
func NewClient(baseURL string, o ClientOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("report server URL: %w", err)
	}
	if u.User != nil {
		return nil, errors.New("report server URL carries credentials; put the token in the token file instead")
	}
	if err := netpolicy.CheckURL(u); err != nil {
		return nil, fmt.Errorf("report server URL %s: %w", u, err)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("report server URL %s: a base URL takes no query or fragment", u)
	}
	if o.TokenFile == "" {
		return nil, errors.New("reports need a token file: the server refuses reports without a bearer token")
	}
	if _, err := readToken(o.TokenFile); err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultClientTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("report timeout %s is negative", timeout)
	}

	path := strings.TrimRight(u.EscapedPath(), "/")
	path = strings.TrimSuffix(path, teleportSuffix)
	path = strings.TrimSuffix(path, plainSuffix)
	root := *u
	root.Path, root.RawPath = "", ""
	root = *root.JoinPath(path)
	target := *root.JoinPath(ReportsPath)

	tlsConf, err := netpolicy.ClientTLS(o.CAFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.ResponseHeaderTimeout = timeout

	return &Client{
		url:       &target,
		root:      &root,
		tokenFile: o.TokenFile,
		userAgent: cmp.Or(o.UserAgent, "upkeep-updater"),
		http: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// A redirect would resend the token somewhere else; an updater's
			// report URL is configured, not discovered, so say where to point it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// String is the URL reports are sent to.
func (c *Client) String() string { return c.url.String() }

// Send posts r. A zero Time is set to now; message and lastError go
// through CleanText, so a long or binary command output does not cost the
// report. r is then validated, so a bad report is an error here, not a 400
// from the server.
func (c *Client) Send(ctx context.Context, r Report) error {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	r.Message = CleanText(r.Message, MaxMessageLength)
	r.LastError = CleanText(r.LastError, MaxErrorLength)
	if err := r.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	token, err := readToken(c.tokenFile)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("POST %s: %w", c.url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", c.url, netpolicy.TransportError(err, token))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("POST %s: reading the answer: %w", c.url, netpolicy.TransportError(err, token))
	}
	if resp.StatusCode/100 == 2 {
		return nil
	}
	hint := ""
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		hint = "; the server does not accept the token: check the token file against the server's --report-token-file"
	case http.StatusNotFound:
		hint = "; is the URL the server's root, and does the server run with --report-token-file?"
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		hint = fmt.Sprintf("; redirects are not followed (they would carry the token elsewhere): configure the URL %q directly", resp.Header.Get("Location"))
	case http.StatusServiceUnavailable:
		hint = "; the server cannot take it now: it sends again after the next pass"
	}
	// The answer is the server's: scrub it before cutting it short, in case
	// it echoes the header.
	msg := strings.ReplaceAll(strings.TrimSpace(string(answer)), token, "[token]")
	return fmt.Errorf("POST %s: %s: %s%s", c.url, resp.Status, quoteMax(msg, 512), hint)
}

// ReadTokenFile reads a token file holding exactly one token, as every
// client of the fleet routes does (updaters, `upkeep fleet`, `upkeep
// rollout`, `upkeep diff --server`). Errors name the file, never its content.
func ReadTokenFile(path string) (string, error) { return readToken(path) }

// readToken reads a token file holding exactly one token. Errors name the
// file, never its content.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the report token file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTokenLength+1))
	if err != nil {
		return "", fmt.Errorf("reading the report token file %s: %w", path, err)
	}
	if len(data) > MaxTokenLength {
		return "", fmt.Errorf("report token file %s is larger than %d bytes; is it the right file?", path, MaxTokenLength)
	}
	token := strings.TrimSpace(string(data))
	switch {
	case token == "":
		return "", fmt.Errorf("report token file %s is empty", path)
	case strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", fmt.Errorf("report token file %s holds white space inside the token or more than one line; it must hold only the token", path)
	}
	return token, nil
}
