package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"upkeep.dev/upkeep/reconcile/server"
)

// FuzzRouter feeds arbitrary paths, methods and If-None-Match headers to
// the handler: it must never panic and must answer one of the codes its
// routes define.
func FuzzRouter(f *testing.F) {
	for _, seed := range []string{
		"/v1/webapi/automaticupgrades/channel/stable/cloud/version",
		"/v1/webapi/automaticupgrades/channel/stable/cloud/critical",
		"/v1/webapi/automaticupgrades/channel//version/",
		"/v1/webapi/automaticupgrades/channel/",
		"/v1/stable/cloud/version",
		"/v1/channels/channels/edge",
		"/v1/channels/edge/version",
		"/v1/channels/../../metrics",
		"/v1/groups/eu-prod/schedule",
		"/v1/groups//schedule",
		"/v1/groups/a/b/schedule",
		"/v1/hooks/git",
		"/v1/",
		"/v1",
		"//",
		"",
		"/readyz",
		"/v1/\x00/version",
		"/v1/é/critical",
	} {
		f.Add(seed, uint8(0), "")
	}
	f.Add("/v1/stable/cloud/version", uint8(1), `"rev1-version-stable/cloud"`)
	f.Add("/v1/channels", uint8(2), `W/"rev1", *`)
	f.Add("/v1/channels", uint8(0), `"`)

	b := serving(f, "rev1")
	h := server.New(b, server.Options{WebhookSecret: []byte("s")})
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions, "BREW"}

	f.Fuzz(func(t *testing.T, path string, method uint8, ifNoneMatch string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method = methods[int(method)%len(methods)]
		req.URL = &url.URL{Path: path}
		if ifNoneMatch != "" {
			req.Header["If-None-Match"] = []string{ifNoneMatch}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 304, 400, 404, 405:
		default:
			t.Fatalf("%s %q (If-None-Match %q) = %d %q", req.Method, path, ifNoneMatch, rec.Code, rec.Body)
		}
		if rec.Code == 304 && rec.Body.Len() != 0 {
			t.Fatalf("304 with a body for %q", path)
		}
	})
}
