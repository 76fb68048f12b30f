package netpolicy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestClientTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "upkeep test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	conf, err := ClientTLS("")
	if err != nil || conf.MinVersion != tls.VersionTLS12 || conf.RootCAs != nil {
		t.Errorf("without a CA file: %+v, %v; want TLS 1.2 at least and the system roots", conf, err)
	}
	conf, err = ClientTLS(ca)
	if err != nil || conf.RootCAs == nil || conf.MinVersion != tls.VersionTLS12 {
		t.Errorf("with a CA file: %+v, %v; want its certificate as the only root", conf, err)
	}
	for file, want := range map[string]string{
		notPEM:                        "holds no PEM certificate",
		filepath.Join(dir, "missing"): "reading the CA file",
	} {
		if _, err := ClientTLS(file); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ClientTLS(%s) = %v, want an error saying %q", file, err, want)
		}
	}
}
