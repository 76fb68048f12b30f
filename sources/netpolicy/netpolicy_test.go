package netpolicy

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "localhost.": true,
		"127.0.0.1": true, "127.9.9.9": true, "::1": true, "[::1]": true,
		"10.0.0.1": false, "192.168.1.1": false, "example.com": false,
		"localhost.example.com": false, "": false, "::": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for raw, wantErr := range map[string]string{
		"https://upkeep.example.com": "",
		"http://127.0.0.1:8080/v1":   "",
		"http://[::1]:8080":          "",
		"http://upkeep.example.com":  "use https://",
		"http://10.1.2.3":            "use https://",
		"ftp://upkeep.example.com":   `scheme "ftp" is not supported`,
		"upkeep.example.com/v1":      "no scheme",
		"https://":                   "no host",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckURL(u)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: %v", raw, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: error %v, want %q", raw, err, wantErr)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestTransportError(t *testing.T) {
	const token = "s3cr3t-token"
	for _, tc := range []struct {
		scenario string
		err      error
		secret   string
		want     string
	}{
		{"a failed call loses the URL prefix the caller writes itself", &url.Error{Op: "Get", URL: "https://x/v1", Err: errors.New("connection refused")}, "", "connection refused"},
		{"a timeout says so", &url.Error{Op: "Post", URL: "https://x/v1", Err: timeoutErr{}}, "", "timed out: i/o timeout"},
		{"a token a transport echoes is never shown", &url.Error{Op: "Get", URL: "https://x/v1", Err: errors.New("bad header Bearer " + token)}, token, "bad header Bearer [token]"},
		{"an error that is not a call's is only scrubbed", errors.New("reading the answer: " + token), token, "reading the answer: [token]"},
		{"without a secret nothing is replaced", errors.New("unexpected EOF"), "", "unexpected EOF"},
	} {
		if got := TransportError(tc.err, tc.secret).Error(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.scenario, got, tc.want)
		}
	}
}
