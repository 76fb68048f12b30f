package ocitest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// ClassicKeyless says how a classic keyless signature is made, and how it
// may be spoiled for attack tests.
type ClassicKeyless struct {
	Subject string // the certificate's SAN
	Issuer  string // the OIDC issuer in the certificate
	// NotBefore starts the certificate's 10-minute validity; zero: a
	// minute ago.
	NotBefore time.Time
	// LogTime is the entry's integrated time; zero: now.
	LogTime time.Time
	// CA issues the certificate instead of s (a CA the root does not list).
	CA *Sigstore
	// SETBy signs the signed entry timestamp with its log key instead of
	// s's, still claiming s's log ID (a forged SET).
	SETBy *Sigstore
	// Log logs the entry in this stack's log instead (its key and log ID:
	// a log the root does not list).
	Log *Sigstore
	// OtherBody attaches a valid SET over a log entry by the same
	// certificate for another payload and signature: the entry does not
	// bind this signature.
	OtherBody bool
	// NoSCT issues the certificate without an embedded SCT.
	NoSCT bool
	// SCTBy embeds an SCT by this stack's CT log instead (one the root
	// does not list).
	SCTBy *Sigstore
}

// SignClassicKeyless signs d the way cosign v2 `cosign sign` (keyless)
// does by default: a simple-signing payload naming d, signed with an
// ephemeral key whose certificate comes from the test CA (SCT embedded),
// a hashedrekord entry in the test log, and the log's signed entry
// timestamp; appended to the "sha256-<hex>.sig" tag with the annotations
// dev.cosignproject.cosign/signature, dev.sigstore.cosign/certificate,
// dev.sigstore.cosign/chain and dev.sigstore.cosign/bundle.
func (s *Sigstore) SignClassicKeyless(tb testing.TB, d name.Digest, k ClassicKeyless) {
	tb.Helper()
	ca := s
	if k.CA != nil {
		ca = k.CA
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	nb := k.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	leaf, err := ca.leafCert(k.Subject, k.Issuer, nb, &key.PublicKey, sctBy(ca, k.NoSCT, k.SCTBy))
	if err != nil {
		tb.Fatalf("ocitest: leaf certificate: %v", err)
	}
	certPEM, err := cryptoutils.MarshalCertificateToPEM(leaf)
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	chainPEM, err := cryptoutils.MarshalCertificatesToPEM([]*x509.Certificate{ca.inter, ca.root})
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	p, err := (&payload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		tb.Fatalf("ocitest: payload: %v", err)
	}
	sig, err := ecdsa.SignASN1(rand.Reader, key, sha256d(p))
	if err != nil {
		tb.Fatalf("ocitest: sign: %v", err)
	}
	b64sig := base64.StdEncoding.EncodeToString(sig)
	body := hashedRekordBody(tb, sha256d(p), sig, certPEM)
	if k.OtherBody {
		// A consistent entry (Rekor checks it) by the same certificate over
		// another payload, as the entry of an earlier signing would be.
		logged := append(bytes.Clone(p), ' ')
		otherSig, err := ecdsa.SignASN1(rand.Reader, key, sha256d(logged))
		if err != nil {
			tb.Fatalf("ocitest: sign: %v", err)
		}
		body = hashedRekordBody(tb, sha256d(logged), otherSig, certPEM)
	}
	logTime := k.LogTime
	if logTime.IsZero() {
		logTime = time.Now()
	}
	log := s
	if k.Log != nil {
		log = k.Log
	}
	logID, err := log.vs.RekorLogID()
	if err != nil {
		tb.Fatalf("ocitest: log ID: %v", err)
	}
	rp := tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: logTime.Unix(), LogIndex: 1, LogID: logID}
	setBy := log
	if k.SETBy != nil {
		setBy = k.SETBy
	}
	set, err := setBy.vs.RekorSignPayload(rp)
	if err != nil {
		tb.Fatalf("ocitest: signed entry timestamp: %v", err)
	}
	rb := &cbundle.RekorBundle{SignedEntryTimestamp: set, Payload: cbundle.RekorPayload{
		Body: rp.Body, IntegratedTime: rp.IntegratedTime, LogIndex: rp.LogIndex, LogID: rp.LogID}}
	ociSig, err := static.NewSignature(p, b64sig, static.WithCertChain(certPEM, chainPEM), static.WithBundle(rb))
	if err != nil {
		tb.Fatalf("ocitest: signature: %v", err)
	}
	attachSignature(tb, d, ociSig)
}

// hashedRekordBody is the Rekor v1 hashedrekord v0.0.1 entry cosign v2
// uploads for an image signature: the payload's SHA-256, the signature and
// the signing certificate (PEM).
func hashedRekordBody(tb testing.TB, payloadSum, sig, certPEM []byte) []byte {
	tb.Helper()
	b, err := json.Marshal(map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data": map[string]any{"hash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(payloadSum)}},
			"signature": map[string]any{
				"content":   base64.StdEncoding.EncodeToString(sig),
				"publicKey": map[string]string{"content": base64.StdEncoding.EncodeToString(certPEM)},
			},
		},
	})
	if err != nil {
		tb.Fatalf("ocitest: rekor body: %v", err)
	}
	return b
}
