package sources

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"upkeep.dev/upkeep/sources/netpolicy"
)

// go-git takes its HTTP client from a process-wide table and offers no
// per-fetch hook, so NewGit installs, once, a client whose transport checks
// each request of a fetch against that fetch's guard (carried in the
// request's context): plain http only to loopback hosts, also after a
// redirect, and at most a fixed number of response bytes. Requests without a
// guard (another user of go-git in the same binary) pass through unchanged.
var installGuardOnce sync.Once

func installGuardedHTTP() {
	installGuardOnce.Do(func() {
		c := githttp.NewClient(&http.Client{Transport: guardedTransport{base: http.DefaultTransport}})
		client.InstallProtocol("https", c)
		client.InstallProtocol("http", c)
	})
}

type fetchGuardKey struct{}

// fetchGuard limits one fetch: its budget is shared by all its requests.
type fetchGuard struct {
	limit int64
	read  atomic.Int64
}

func withFetchGuard(ctx context.Context, limit int64) context.Context {
	return context.WithValue(ctx, fetchGuardKey{}, &fetchGuard{limit: limit})
}

// fetchTooLargeError says a fetch went over its byte budget.
type fetchTooLargeError struct{ limit int64 }

func (e *fetchTooLargeError) Error() string {
	return fmt.Sprintf("the remote sent more than %d bytes in one fetch; raise MaxFetchBytes if the repository really is that large", e.limit)
}

type guardedTransport struct{ base http.RoundTripper }

func (t guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	g, _ := req.Context().Value(fetchGuardKey{}).(*fetchGuard)
	if g == nil {
		return t.base.RoundTrip(req)
	}
	if req.URL.Scheme != "https" && !netpolicy.IsLoopback(req.URL.Hostname()) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain %s:// to %s (only loopback hosts may be reached without TLS; was the request redirected?)", req.URL.Scheme, req.URL.Host)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &guardedBody{ReadCloser: resp.Body, g: g}
	return resp, nil
}

type guardedBody struct {
	io.ReadCloser
	g *fetchGuard
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.g.read.Add(int64(n)) > b.g.limit {
		return 0, &fetchTooLargeError{limit: b.g.limit}
	}
	return n, err
}
