package ocitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/rekor/pkg/types/intoto"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
)

// BundleMediaType is the media type of the bundles cosign v3 writes.
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Sigstore is a test Sigstore stack made in the test: a Fulcio-like
// certificate authority, a Rekor-like transparency log and a timestamp
// authority. The log and the timestamp authority come from sigstore-go's
// testing/ca; the CA is made here so that tests can issue certificates for
// any validity period (an expired one, for instance). TrustedRootJSON is
// what `cosign trusted-root create` would write for it.
type Sigstore struct {
	vs              *ca.VirtualSigstore
	root            *x509.Certificate
	inter           *x509.Certificate
	interKey        *ecdsa.PrivateKey
	ctKey           *ecdsa.PrivateKey // the test CT log: every leaf embeds its SCT
	TrustedRootJSON []byte
	// TrustedRootNoCTJSON is the same root without its CT log (a private
	// Sigstore without certificate transparency), so no SCT is required.
	TrustedRootNoCTJSON []byte
}

// rekorOrigin is the checkpoint origin sigstore-go's test log signs; the
// trusted root's log URL must have it as its host.
const rekorOrigin = "rekor.localhost"

// NewSigstore starts a test Sigstore stack, or fails tb.
func NewSigstore(tb testing.TB) *Sigstore {
	tb.Helper()
	s, err := GenerateSigstore()
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	return s
}

// GenerateSigstore is NewSigstore for callers without a testing.TB.
func GenerateSigstore() (*Sigstore, error) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		return nil, fmt.Errorf("virtual sigstore: %w", err)
	}
	rootCert, rootKey, err := ca.GenerateRootCa()
	if err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	inter, interKey, err := intermediate(rootCert, rootKey)
	if err != nil {
		return nil, fmt.Errorf("intermediate CA: %w", err)
	}
	ctKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CT log key: %w", err)
	}
	s := &Sigstore{vs: vs, root: rootCert, inter: inter, interKey: interKey, ctKey: ctKey}
	now := time.Now()
	ctLogs, err := s.ctLogs(now)
	if err != nil {
		return nil, err
	}
	fulcio := &root.FulcioCertificateAuthority{
		Root: rootCert, Intermediates: []*x509.Certificate{inter},
		ValidityPeriodStart: now.Add(-24 * time.Hour), ValidityPeriodEnd: now.Add(24 * time.Hour),
		URI: "https://fulcio.localhost",
	}
	logs := vs.RekorLogs()
	for id, l := range logs {
		// The test log's ID is its hex key ID as text; a trusted root
		// holds the raw key ID, as the log entries do.
		raw, err := hex.DecodeString(id)
		if err != nil {
			return nil, fmt.Errorf("log ID %q: %w", id, err)
		}
		l.ID = raw
		l.BaseURL = "https://" + rekorOrigin
		l.ValidityPeriodStart = now.Add(-24 * time.Hour)
		l.ValidityPeriodEnd = time.Time{}
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, []root.CertificateAuthority{fulcio},
		ctLogs, vs.TimestampingAuthorities(), logs)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	if s.TrustedRootJSON, err = tr.MarshalJSON(); err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	noCT, err := root.NewTrustedRoot(root.TrustedRootMediaType01, []root.CertificateAuthority{fulcio},
		nil, vs.TimestampingAuthorities(), logs)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	if s.TrustedRootNoCTJSON, err = noCT.MarshalJSON(); err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	return s, nil
}

// WriteTrustedRoot writes the trusted root into a temporary directory and
// returns its path.
func (s *Sigstore) WriteTrustedRoot(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "trusted_root.json")
	if err := os.WriteFile(p, s.TrustedRootJSON, 0o644); err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	return p
}

// Keyless says how a keyless bundle is made.
type Keyless struct {
	Subject string // the certificate's SAN: a URI (workflow) or an e-mail
	Issuer  string // the OIDC issuer in the certificate
	// NotBefore starts the certificate's 10-minute validity; zero: a
	// minute ago, so the timestamps made now fall within it.
	NotBefore time.Time
	// NoTimestamp leaves out the timestamp authority's signed timestamp.
	NoTimestamp bool
	// NoTlog leaves out the transparency log entry.
	NoTlog bool
	// SET adds the log's signed entry timestamp (Rekor v1's inclusion
	// promise), which makes the logged time a verified time.
	SET bool
	// LogTime is the entry's integrated time; zero: now.
	LogTime time.Time
	// NoSCT issues the certificate without an embedded SCT.
	NoSCT bool
}

// KeylessBundle signs digest the way `cosign sign` (v3, keyless) does: a
// short-lived certificate for k.Subject from the test CA, a DSSE envelope
// over an in-toto statement naming digest (predicate cosign/sign/v1), an
// entry in the test log with its inclusion proof, and a signed timestamp.
// It returns the bundle's JSON.
func (s *Sigstore) KeylessBundle(tb testing.TB, digest name.Digest, k Keyless) []byte {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	nb := k.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	leaf, err := s.leafCert(k.Subject, k.Issuer, nb, &key.PublicKey, sctBy(s, k.NoSCT, nil))
	if err != nil {
		tb.Fatalf("ocitest: leaf certificate: %v", err)
	}
	statement := Statement(tb, digest)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sha256d(pae(dssePayloadType, statement)))
	if err != nil {
		tb.Fatalf("ocitest: sign: %v", err)
	}
	vm := &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: leaf.Raw}},
	}
	if !k.NoTlog {
		env := &dsse.Envelope{PayloadType: dssePayloadType, Payload: base64.StdEncoding.EncodeToString(statement),
			Signatures: []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}}}
		logTime := k.LogTime
		if logTime.IsZero() {
			logTime = time.Now()
		}
		entry, err := s.vs.GenerateTlogEntry(leaf, env, sig, logTime.Unix(), true)
		if err != nil {
			tb.Fatalf("ocitest: log entry: %v", err)
		}
		tle := entry.TransparencyLogEntry()
		tle.KindVersion = &protorekor.KindVersion{Kind: intoto.KIND, Version: intoto.New().DefaultVersion()}
		if k.SET {
			set, err := s.vs.RekorSignPayload(tlog.RekorPayload{
				Body: base64.StdEncoding.EncodeToString(tle.CanonicalizedBody), IntegratedTime: tle.IntegratedTime,
				LogIndex: tle.LogIndex, LogID: hex.EncodeToString(tle.LogId.KeyId),
			})
			if err != nil {
				tb.Fatalf("ocitest: signed entry timestamp: %v", err)
			}
			tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
		}
		vm.TlogEntries = []*protorekor.TransparencyLogEntry{tle}
	}
	if !k.NoTimestamp {
		tsr, err := s.vs.TimestampResponse(sig)
		if err != nil {
			tb.Fatalf("ocitest: timestamp: %v", err)
		}
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: tsr}},
		}
	}
	b := &protobundle.Bundle{
		MediaType:            BundleMediaType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: statement, PayloadType: dssePayloadType,
			Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	}
	out, err := protojson.Marshal(b)
	if err != nil {
		tb.Fatalf("ocitest: bundle: %v", err)
	}
	return out
}

// SignKeyless makes a keyless bundle for d and attaches it as d's referrer.
func (s *Sigstore) SignKeyless(tb testing.TB, d name.Digest, k Keyless) {
	tb.Helper()
	AttachBundleJSON(tb, d, s.KeylessBundle(tb, d, k))
}

// leafCert issues a Fulcio-style code-signing certificate: the subject as a
// URI or e-mail SAN and the issuer in Fulcio's OIDC issuer extensions.
func (s *Sigstore) leafCert(subject, issuer string, notBefore time.Time, pub crypto.PublicKey, ctLog *Sigstore) (*x509.Certificate, error) {
	issuerV2, err := asn1.Marshal(issuer)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(10 * time.Minute),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}, Value: []byte(issuer)},
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}, Value: issuerV2},
		},
	}
	if u, err := url.Parse(subject); err == nil && u.Scheme != "" && !strings.Contains(subject, "@") {
		tmpl.URIs = []*url.URL{u}
	} else {
		tmpl.EmailAddresses = []string{subject}
	}
	// Fulcio logs a precertificate in a CT log and embeds the log's SCT in
	// the certificate it issues; the SCT covers the certificate's TBS
	// without the SCT list, which is what this first certificate is.
	if ctLog == nil {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, s.inter, pub, s.interKey)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	pre, err := x509.CreateCertificate(rand.Reader, tmpl, s.inter, pub, s.interKey)
	if err != nil {
		return nil, err
	}
	preCert, err := x509.ParseCertificate(pre)
	if err != nil {
		return nil, err
	}
	sct, err := s.sctExtension(ctLog, preCert.RawTBSCertificate, notBefore)
	if err != nil {
		return nil, fmt.Errorf("SCT: %w", err)
	}
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, sct)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.inter, pub, s.interKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// sctExtension is the embedded SCT list extension (RFC 6962 3.3) holding
// one SCT by ctLog's CT log over tbs, issued by s's intermediate, at at.
func (s *Sigstore) sctExtension(ctLog *Sigstore, tbs []byte, at time.Time) (pkix.Extension, error) {
	logID, err := ctLogID(&ctLog.ctKey.PublicKey)
	if err != nil {
		return pkix.Extension{}, err
	}
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.V1, LogID: ct.LogID{KeyID: logID}, Timestamp: uint64(at.UnixMilli())}
	entry := ct.LogEntry{Leaf: ct.MerkleTreeLeaf{Version: ct.V1, LeafType: ct.TimestampedEntryLeafType,
		TimestampedEntry: &ct.TimestampedEntry{Timestamp: sct.Timestamp, EntryType: ct.PrecertLogEntryType,
			PrecertEntry: &ct.PreCert{IssuerKeyHash: sha256.Sum256(s.inter.RawSubjectPublicKeyInfo), TBSCertificate: tbs}}}}
	input, err := ct.SerializeSCTSignatureInput(sct, entry)
	if err != nil {
		return pkix.Extension{}, err
	}
	sig, err := cttls.CreateSignature(*ctLog.ctKey, cttls.SHA256, input)
	if err != nil {
		return pkix.Extension{}, err
	}
	sct.Signature = ct.DigitallySigned(sig)
	raw, err := cttls.Marshal(sct)
	if err != nil {
		return pkix.Extension{}, err
	}
	list, err := cttls.Marshal(ctx509.SignedCertificateTimestampList{SCTList: []ctx509.SerializedSCT{{Val: raw}}})
	if err != nil {
		return pkix.Extension{}, err
	}
	val, err := asn1.Marshal(list)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier(ctx509.OIDExtensionCTSCT), Value: val}, nil
}

// sctBy picks the CT log whose SCT a leaf embeds: by, else s; none if
// noSCT.
func sctBy(s *Sigstore, noSCT bool, by *Sigstore) *Sigstore {
	switch {
	case noSCT:
		return nil
	case by != nil:
		return by
	}
	return s
}

// ctLogID is a CT log's ID: the SHA-256 of its PKIX public key.
func ctLogID(pub crypto.PublicKey) ([32]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(der), nil
}

// ctLogs is the trusted root's CT log: s's, valid from a day ago so that
// certificates issued in the past (expired ones) carry a verifiable SCT.
func (s *Sigstore) ctLogs(now time.Time) (map[string]*root.TransparencyLog, error) {
	id, err := ctLogID(&s.ctKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("CT log ID: %w", err)
	}
	return map[string]*root.TransparencyLog{hex.EncodeToString(id[:]): {
		BaseURL: "https://ctfe.localhost", ID: id[:], HashFunc: crypto.SHA256, SignatureHashFunc: crypto.SHA256,
		PublicKey: &s.ctKey.PublicKey, ValidityPeriodStart: now.Add(-24 * time.Hour),
	}}, nil
}

const dssePayloadType = "application/vnd.in-toto+json"

// Statement is the in-toto statement cosign v3 signs for an image: one
// subject, the image's repository and digest.
func Statement(tb testing.TB, d name.Digest) []byte {
	tb.Helper()
	st, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": d.Context().Name(), "digest": map[string]string{"sha256": strings.TrimPrefix(d.DigestStr(), "sha256:")}}},
		"predicateType": CosignSignPredicateType,
		"predicate":     map[string]any{},
	})
	if err != nil {
		tb.Fatalf("ocitest: statement: %v", err)
	}
	return st
}

func sha256d(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// AttachBundleJSON pushes bundle as a Sigstore bundle referrer of d, the
// way cosign v3 stores it (an OCI 1.1 manifest with subject d and
// artifactType application/vnd.dev.sigstore.bundle.v0.3+json; through the
// "sha256-<hex>" fallback tag on a registry without the referrers API).
// The bundle is pushed as it is: tests use it to attach altered or
// replayed bundles.
func AttachBundleJSON(tb testing.TB, d name.Digest, bundle []byte) {
	tb.Helper()
	if err := ociremote.WriteAttestationNewBundleFormat(d, bundle, CosignSignPredicateType,
		ociremote.WithRemoteOptions(remoteOptions()...)); err != nil {
		tb.Fatalf("ocitest: write bundle referrer for %s: %v", d, err)
	}
}

// Bundles returns the JSON of every Sigstore bundle referrer of d, as an
// attacker who copies them would read them.
func Bundles(tb testing.TB, d name.Digest) [][]byte {
	tb.Helper()
	idx, err := remote.Referrers(d, remoteOptions()...)
	if err != nil {
		tb.Fatalf("ocitest: referrers of %s: %v", d, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	var out [][]byte
	for _, desc := range m.Manifests {
		_, annotated := desc.Annotations["dev.sigstore.bundle.content"]
		if !strings.HasPrefix(desc.ArtifactType, "application/vnd.dev.sigstore.bundle") && !annotated {
			continue
		}
		out = append(out, readBundleLayer(tb, d.Context().Digest(desc.Digest.String())))
	}
	return out
}

func readBundleLayer(tb testing.TB, ref name.Digest) []byte {
	tb.Helper()
	img, err := remote.Image(ref, remoteOptions()...)
	if err != nil {
		tb.Fatalf("ocitest: read %s: %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		tb.Fatalf("ocitest: %s has no layer: %v", ref, err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		tb.Fatalf("ocitest: read %s: %v", ref, err)
	}
	return b
}

// IndexManifests lists the platform manifests of image index d.
func IndexManifests(tb testing.TB, d name.Digest) []name.Digest {
	tb.Helper()
	idx, err := remote.Index(d, remoteOptions()...)
	if err != nil {
		tb.Fatalf("ocitest: read index %s: %v", d, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	var out []name.Digest
	for _, desc := range m.Manifests {
		out = append(out, d.Context().Digest(desc.Digest.String()))
	}
	return out
}

// HasSignatureTag says whether d has a classic "sha256-<hex>.sig" tag.
func HasSignatureTag(tb testing.TB, d name.Digest) bool {
	tb.Helper()
	tag, err := ociremote.SignatureTag(d)
	if err != nil {
		tb.Fatalf("ocitest: %v", err)
	}
	_, err = remote.Head(tag, remoteOptions()...)
	return err == nil
}

// intermediate issues the CA's intermediate, valid from five hours ago
// (like the root) so that tests can sign in the past: testing/ca's own
// starts two minutes ago.
func intermediate(rootCert *x509.Certificate, rootKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "upkeep test fulcio intermediate", Organization: []string{"upkeep test"}},
		NotBefore:             time.Now().Add(-5 * time.Hour),
		NotAfter:              time.Now().Add(5 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, rootCert, &key.PublicKey, rootKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}
