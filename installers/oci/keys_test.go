package oci_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"upkeep.dev/upkeep/installers/oci"
)

func pkixPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestNewVerifierKeys(t *testing.T) {
	a, b := testKeys(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	weakRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not really")})

	tests := []struct {
		scenario string
		keys     [][]byte
		names    []string
		wantErr  []string // substrings; nil means accepted
		wantIDs  int
	}{
		{scenario: "one cosign key is accepted", keys: [][]byte{a.PublicPEM}, wantIDs: 1},
		{scenario: "two inputs give two keys", keys: [][]byte{a.PublicPEM, b.PublicPEM}, wantIDs: 2},
		{scenario: "one input listing two PEM keys gives two keys", keys: [][]byte{append(append([]byte{}, a.PublicPEM...), b.PublicPEM...)}, wantIDs: 2},
		{scenario: "RSA, P-384 and Ed25519 keys are accepted", keys: [][]byte{pkixPEM(t, &rsaKey.PublicKey), pkixPEM(t, &p384.PublicKey), pkixPEM(t, edPub)}, wantIDs: 3},
		{scenario: "no keys is refused", keys: nil, wantErr: []string{"no cosign public keys configured"}},
		{scenario: "an empty key is refused and named", keys: [][]byte{a.PublicPEM, []byte("  \n")}, wantErr: []string{"key 2", "empty"}},
		{scenario: "text that is not PEM is refused", keys: [][]byte{[]byte("ssh-ed25519 AAAA")}, wantErr: []string{"key 1", "not PEM"}},
		{scenario: "a private key is refused with a hint", keys: [][]byte{a.PrivatePEM}, wantErr: []string{"key 1", "not a PUBLIC KEY", "never the private key"}},
		{scenario: "a certificate is refused", keys: [][]byte{cert}, wantErr: []string{`"CERTIFICATE"`}},
		{scenario: "a corrupt key is refused", keys: [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("garbage")})}, wantErr: []string{"key 1", "parse"}},
		{scenario: "a 1024-bit RSA key is refused", keys: [][]byte{pkixPEM(t, &weakRSA.PublicKey)}, wantErr: []string{"unusable key"}},
		{scenario: "text after a PEM block is refused", keys: [][]byte{append(append([]byte{}, a.PublicPEM...), "trailing"...)}, wantErr: []string{"unexpected text after PEM block 1"}},
		{scenario: "the same key twice is refused", keys: [][]byte{a.PublicPEM, b.PublicPEM, a.PublicPEM}, wantErr: []string{"key 3", "same key as key 1"}},
		{scenario: "key names label errors", keys: [][]byte{a.PublicPEM, []byte("oops")}, names: []string{"secret upkeep/keys key a.pub", "secret upkeep/keys key b.pub"}, wantErr: []string{"secret upkeep/keys key b.pub", "not PEM"}},
		{scenario: "the bad block of a multi-key input is named", keys: [][]byte{append(append([]byte{}, a.PublicPEM...), cert...)}, wantErr: []string{"key 1 (PEM block 2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			v, err := oci.NewVerifier(tt.keys, oci.Options{KeyNames: tt.names})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("NewVerifier: %v", err)
				}
				if got := len(v.KeyIDs()); got != tt.wantIDs {
					t.Errorf("%d keys, want %d", got, tt.wantIDs)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewVerifier accepted %s", tt.scenario)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %v", s, err)
				}
			}
			if bytes.Contains([]byte(err.Error()), []byte("PRIVATE KEY-----")) {
				t.Errorf("error echoes key material: %v", err)
			}
		})
	}
}

func TestKeyIDsAreFingerprints(t *testing.T) {
	a, b := testKeys(t)
	v, err := oci.NewVerifier([][]byte{b.PublicPEM, a.PublicPEM}, oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := v.KeyIDs()
	want := []string{fingerprint(t, b.PublicPEM), fingerprint(t, a.PublicPEM)}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("KeyIDs = %v, want %v", got, want)
	}
}
