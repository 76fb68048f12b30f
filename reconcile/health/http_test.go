package health

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHTTPCheck(t *testing.T) {
	tests := []struct {
		scenario string
		handler  http.HandlerFunc
		expect   int
		status   Status
		detail   string
	}{
		{"200 is healthy", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }, 0, Healthy, "status 200 OK"},
		{"503 is unhealthy and quotes the body", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"status":"auth server unreachable"}`, http.StatusServiceUnavailable)
		}, 0, Unhealthy, `status 503 Service Unavailable, want 200, body "{\"status\":\"auth server unreachable\"}"`},
		{"an expected 204 is healthy", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, 204, Healthy, "status 204"},
		{"200 when 204 is expected is unhealthy", func(w http.ResponseWriter, r *http.Request) {}, 204, Unhealthy, "status 200 OK, want 204"},
		{"a redirect is not followed and is unhealthy", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/login", http.StatusFound)
		}, 0, Unhealthy, "status 302 Found, want 200"},
		{"a slow endpoint is unhealthy after the timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}, 0, Unhealthy, "no answer within 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c, err := NewHTTPCheck(srv.URL+"/readyz", tt.expect, 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			o := c.Probe(t.Context())
			if o.Status != tt.status || !strings.Contains(o.Detail, tt.detail) {
				t.Errorf("got %v %q, want %v containing %q", o.Status, o.Detail, tt.status, tt.detail)
			}
		})
	}

	t.Run("a stopped agent (connection refused) is unhealthy", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c, _ := NewHTTPCheck(url, 0, time.Second)
		o := c.Probe(t.Context())
		if o.Status != Unhealthy || !strings.Contains(o.Detail, "connection refused") {
			t.Errorf("got %v %q", o.Status, o.Detail)
		}
	})
}

func TestNewHTTPCheck(t *testing.T) {
	for _, tt := range []struct {
		scenario string
		url      string
		expect   int
		err      string
	}{
		{"http on loopback is fine", "http://127.0.0.1:3000/readyz", 0, ""},
		{"http on localhost is fine", "http://localhost:3000/readyz", 0, ""},
		{"https anywhere is fine", "https://agent.example.com/healthz", 0, ""},
		{"plain http to another host is refused", "http://10.1.2.3:3000/readyz", 0, "use https://"},
		{"another scheme is refused", "tcp://127.0.0.1:3000", 0, "not supported"},
		{"a URL without host is refused", "http:///readyz", 0, "no host"},
		{"an impossible status is refused", "http://127.0.0.1/", 42, "not an HTTP status"},
		{"credentials are not echoed", "http://user:hunter2@10.0.0.1/", 0, "use https://"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			c, err := NewHTTPCheck(tt.url, tt.expect, 0)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.ExpectStatus != 200 || c.timeout != DefaultHTTPTimeout {
					t.Errorf("defaults: %d %s", c.ExpectStatus, c.timeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "user") {
				t.Errorf("error leaks credentials: %v", err)
			}
		})
	}
}
