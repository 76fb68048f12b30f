package oci

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A streamed (chunked) body has no Content-Length: the limit must still
// hold, and must fail rather than truncate.
func TestGuardTransportBoundsStreamedBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 100
		if strings.HasSuffix(r.URL.Path, "/exact") {
			n = 64
		}
		for range n {
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: &guardTransport{base: http.DefaultTransport, allowLoopbackHTTP: true, maxManifest: 64, maxBody: 1000}}

	get := func(path string) ([]byte, error) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.ContentLength >= 0 {
			t.Fatalf("%s: server sent Content-Length %d; the test needs a streamed body", path, resp.ContentLength)
		}
		return io.ReadAll(resp.Body)
	}
	if _, err := get("/v2/agent/manifests/1.0.0"); err == nil || !strings.Contains(err.Error(), "exceeds the limit of 64 bytes") {
		t.Errorf("101-byte manifest with a 64-byte limit: %v", err)
	}
	if b, err := get("/v2/agent/manifests/exact"); err != nil || len(b) != 64 {
		t.Errorf("manifest exactly at the limit: %d bytes, %v", len(b), err)
	}
	if b, err := get("/v2/agent/blobs/sha256:abc"); err != nil || len(b) != 100 {
		t.Errorf("blob under its own limit: %d bytes, %v", len(b), err)
	}
}

func TestGuardTransportRefusesWithoutDialing(t *testing.T) {
	dialed := false
	base := roundTripFunc(func(*http.Request) (*http.Response, error) {
		dialed = true
		return nil, io.EOF
	})
	g := &guardTransport{base: base, allowLoopbackHTTP: true, maxManifest: 1, maxBody: 1}
	for _, u := range []string{"http://10.0.0.1:5000/v2/", "http://registry.example.com/v2/", "http://registry.localhost/v2/", "ftp://127.0.0.1/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if _, err := g.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "plain HTTP refused") {
			t.Errorf("%s: %v, want plain HTTP refused", u, err)
		}
	}
	if dialed {
		t.Error("a refused request reached the base transport")
	}
	g.allowLoopbackHTTP = false
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:5000/v2/", nil)
	if _, err := g.RoundTrip(req); err == nil || dialed {
		t.Errorf("loopback HTTP when not allowed: err %v, dialed %v", err, dialed)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
