package oci

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"upkeep.dev/upkeep/sources/netpolicy"
)

// errPlainHTTP is returned, before any connection is made, for a plain-HTTP
// request that the policy does not allow.
var errPlainHTTP = errors.New("plain HTTP refused")

// guardTransport enforces the network policy on every request the registry
// client makes, including the ping, token exchanges and redirects:
//
//   - plain HTTP only to loopback hosts, and only when allowLoopbackHTTP is
//     set. go-containerregistry on its own also falls back to HTTP for
//     RFC 1918 addresses and *.localhost names; this is where that stops.
//   - response bodies are bounded: manifests, indexes and referrer lists by
//     maxManifest, everything else (signature payloads, tokens) by maxBody.
type guardTransport struct {
	base              http.RoundTripper
	allowLoopbackHTTP bool
	maxManifest       int64
	maxBody           int64
}

func (t *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		if req.URL.Scheme != "http" || !t.allowLoopbackHTTP || !netpolicy.IsLoopback(req.URL.Hostname()) {
			// Close the body as RoundTrip must, even on error.
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, fmt.Errorf("%w to %s: registries are reached over HTTPS only (plain HTTP is allowed for loopback registries when enabled)", errPlainHTTP, req.URL.Host)
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	limit := t.maxBody
	if isManifestPath(req.URL.Path) {
		limit = t.maxManifest
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, fmt.Errorf("response from %s is %d bytes, above the limit of %d", redactURL(req), resp.ContentLength, limit)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: limit, limit: limit, what: redactURL(req)}
	return resp, nil
}

// isManifestPath reports whether path is a registry manifest or referrers
// endpoint (/v2/<name>/manifests/<ref>, /v2/<name>/referrers/<digest>).
func isManifestPath(path string) bool {
	return strings.Contains(path, "/manifests/") || strings.Contains(path, "/referrers/")
}

// redactURL names a request without its query string, which may carry
// tokens on some registries' blob redirects.
func redactURL(req *http.Request) string {
	return req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
}

// limitedBody fails the read that would take it past limit, instead of
// silently truncating (which would only show up later as a digest mismatch).
type limitedBody struct {
	rc    io.ReadCloser
	left  int64
	limit int64
	what  string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe one byte to tell "exactly at the limit" from "over it".
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("response from %s exceeds the limit of %d bytes", b.what, b.limit)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
