package netpolicy

import (
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
