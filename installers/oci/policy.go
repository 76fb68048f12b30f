package oci

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"gopkg.in/yaml.v3"
)

// DefaultPolicy is the name of the policy NewVerifier's keys make, and the
// policy images fall back to when Trust.Default is empty.
const DefaultPolicy = "default"

// Policy says who may sign the images it applies to: keys, keyless
// identities, or both (then either suffices).
type Policy struct {
	// KeysPEM are trusted public keys (cosign.pub), one or more PEM blocks
	// per element; KeyNames label them in errors.
	KeysPEM  [][]byte
	KeyNames []string
	// Threshold is how many distinct keys must each have signed the digest
	// (classic signature or bundle); 0 means 1.
	Threshold int
	// Keyless identities: a bundle or classic ".sig" signature whose
	// Fulcio certificate matches one of them, chained to TrustedRoot,
	// logged and timestamped, suffices.
	Keyless []Identity
	// TrustedRootJSON is a Sigstore trusted_root.json (as sigstore-go and
	// `cosign trusted-root create` write it): the CA, transparency logs and
	// timestamp authorities. Required for Keyless; with Keys it makes
	// transparency-log inclusion and a verified timestamp required for
	// bundles. Read offline, never fetched.
	TrustedRootJSON []byte
	// TrustedRootName labels TrustedRootJSON in errors (its path).
	TrustedRootName string
}

// Identity is a keyless signer: the certificate's OIDC issuer and subject
// (SAN: a CI workflow URI or an e-mail), each exact or as a regular
// expression (Go syntax, anchored by the writer with ^ and $).
type Identity struct {
	Issuer        string `yaml:"issuer"`
	IssuerRegExp  string `yaml:"issuerRegExp"`
	Subject       string `yaml:"subject"`
	SubjectRegExp string `yaml:"subjectRegExp"`
}

func (id Identity) String() string {
	s := "subject " + quoteOr(id.Subject, id.SubjectRegExp)
	return s + " from issuer " + quoteOr(id.Issuer, id.IssuerRegExp)
}

func quoteOr(exact, re string) string {
	if exact != "" {
		return fmt.Sprintf("%q", exact)
	}
	return fmt.Sprintf("matching /%s/", re)
}

// Trust is a set of named policies and which images each applies to.
type Trust struct {
	Policies map[string]Policy
	// Channels maps a release channel to the policy of its images.
	Channels map[string]string
	// Default is the policy of images that neither their workload nor
	// their channel assigns one; "" means DefaultPolicy if it exists, else
	// such images are refused.
	Default string
}

// Scope says which policy applies to one verification: Policy if set (a
// workload's choice), else the policy of Channel, else the default.
type Scope struct {
	Policy  string
	Channel string
}

// compiled is a policy ready to verify with.
type compiled struct {
	name       string
	keys       []publicKey
	threshold  int
	identities []identity
	trusted    root.TrustedMaterial // nil without a trusted root
	rootName   string
	keyless    *verify.Verifier   // nil without identities
	classic    *cosign.CheckOpts  // classic keyless checks; nil without identities
	keyVerify  []*verify.Verifier // per key, for bundles
}

type identity struct {
	Identity
	cert      verify.CertificateIdentity
	subjectRE *regexp.Regexp
	issuerRE  *regexp.Regexp
}

func (id identity) subjectMatches(s string) bool {
	if id.Subject != "" {
		return s == id.Subject
	}
	return id.subjectRE.MatchString(s)
}

func (id identity) issuerMatches(s string) bool {
	if id.Issuer != "" {
		return s == id.Issuer
	}
	return id.issuerRE.MatchString(s)
}

// compile checks p and builds its verifiers. Errors name the policy and
// the field.
func compile(name string, p Policy) (*compiled, error) {
	c := &compiled{name: name, threshold: p.Threshold, rootName: p.TrustedRootName}
	if c.rootName == "" {
		c.rootName = "trusted root"
	}
	if len(p.KeysPEM) == 0 && len(p.Keyless) == 0 {
		return nil, fmt.Errorf("policy %q: no keys and no keyless identities: give keys (cosign.pub), keyless identities, or both", name)
	}
	if len(p.KeysPEM) > 0 {
		keys, err := parseKeys(p.KeysPEM, p.KeyNames)
		if err != nil {
			return nil, fmt.Errorf("policy %q: keys: %w", name, err)
		}
		c.keys = keys
	}
	if c.threshold == 0 {
		c.threshold = 1
	}
	if c.threshold < 0 || (len(c.keys) > 0 && c.threshold > len(c.keys)) {
		return nil, fmt.Errorf("policy %q: threshold %d: want 1 to %d, the number of keys", name, p.Threshold, len(c.keys))
	}
	if len(c.keys) == 0 && p.Threshold > 1 {
		return nil, fmt.Errorf("policy %q: threshold %d needs keys; keyless identities count as one signer", name, p.Threshold)
	}
	if len(p.TrustedRootJSON) > 0 {
		tr, err := root.NewTrustedRootFromJSON(p.TrustedRootJSON)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %s: not a Sigstore trusted_root.json: %w", name, c.rootName, err)
		}
		c.trusted = tr
	}
	for i, id := range p.Keyless {
		where := fmt.Sprintf("policy %q: keyless[%d]", name, i)
		if (id.Issuer == "") == (id.IssuerRegExp == "") {
			return nil, fmt.Errorf("%s: give exactly one of issuer and issuerRegExp (the OIDC issuer, e.g. https://token.actions.githubusercontent.com)", where)
		}
		if (id.Subject == "") == (id.SubjectRegExp == "") {
			return nil, fmt.Errorf("%s: give exactly one of subject and subjectRegExp (the certificate identity, e.g. a workflow URI or an e-mail)", where)
		}
		ci, err := verify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegExp, id.Subject, id.SubjectRegExp)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		cid := identity{Identity: id, cert: ci}
		if id.SubjectRegExp != "" {
			cid.subjectRE = regexp.MustCompile(id.SubjectRegExp) // checked by NewShortCertificateIdentity
		}
		if id.IssuerRegExp != "" {
			cid.issuerRE = regexp.MustCompile(id.IssuerRegExp)
		}
		c.identities = append(c.identities, cid)
	}
	if len(c.identities) > 0 {
		if c.trusted == nil {
			return nil, fmt.Errorf("policy %q: keyless identities need trustedRoot, a Sigstore trusted_root.json (e.g. from `cosign trusted-root create` or the Sigstore TUF repository): upkeep verifies offline", name)
		}
		if len(c.trusted.FulcioCertificateAuthorities()) == 0 {
			return nil, fmt.Errorf("policy %q: %s names no certificate authority, so no keyless certificate can verify", name, c.rootName)
		}
		vopts := []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1)}
		if len(c.trusted.CTLogs()) > 0 {
			// A root that lists CT logs (Sigstore's public one does) makes
			// an SCT in the Fulcio certificate required, as cosign does.
			vopts = append(vopts, verify.WithSignedCertificateTimestamps(1))
		}
		v, err := verify.NewVerifier(c.trusted, vopts...)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", name, err)
		}
		c.keyless = v
		c.classic = classicKeylessOpts(c)
	}
	for _, k := range c.keys {
		mat := root.TrustedMaterial(keyMaterial(k))
		opts := []verify.VerifierOption{verify.WithCurrentTime()}
		if c.trusted != nil {
			// A trusted root with keys asks for what cosign's default
			// (Rekor upload) gives: a logged and timestamped signature.
			mat = root.TrustedMaterialCollection{c.trusted, mat}
			opts = []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1)}
		}
		v, err := verify.NewVerifier(mat, opts...)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", name, err)
		}
		c.keyVerify = append(c.keyVerify, v)
	}
	return c, nil
}

// keyMaterial trusts one key whatever hint a bundle gives: cosign writes a
// hint, but the key that verifies is what counts.
func keyMaterial(k publicKey) *root.TrustedPublicKeyMaterial {
	ek := root.NewExpiringKey(k.verifier, timeZero, timeZero)
	return root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return ek, nil })
}

// describe says in one phrase what the policy trusts, for messages.
func (c *compiled) describe() string {
	var parts []string
	if len(c.keys) > 0 {
		ids := make([]string, len(c.keys))
		for i, k := range c.keys {
			ids[i] = k.label + " " + k.id
		}
		if c.threshold > 1 {
			parts = append(parts, fmt.Sprintf("%d of the keys %s", c.threshold, strings.Join(ids, ", ")))
		} else {
			parts = append(parts, "the keys "+strings.Join(ids, ", "))
		}
	}
	if len(c.identities) > 0 {
		ids := make([]string, len(c.identities))
		for i, id := range c.identities {
			ids[i] = id.String()
		}
		parts = append(parts, "keyless "+strings.Join(ids, " or "))
	}
	return fmt.Sprintf("policy %q trusts %s", c.name, strings.Join(parts, ", or "))
}

// trustFile is the YAML of a trust policy file.
type trustFile struct {
	Policies map[string]policyFile `yaml:"policies"`
	Channels map[string]string     `yaml:"channels"`
	Default  string                `yaml:"default"`
}

type policyFile struct {
	Keys        []string   `yaml:"keys"`
	Threshold   int        `yaml:"threshold"`
	Keyless     []Identity `yaml:"keyless"`
	TrustedRoot string     `yaml:"trustedRoot"`
}

// LoadTrust reads a trust policy file (YAML):
//
//	policies:
//	  release:                 # a name of [a-z0-9-]
//	    keys: [/etc/upkeep/keys/release.pub]   # PEM files, or PEM text
//	    threshold: 1           # how many distinct keys must sign (default 1)
//	  teleport:
//	    keyless:
//	      - issuer: https://token.actions.githubusercontent.com
//	        subjectRegExp: ^https://github\.com/gravitational/teleport/
//	    trustedRoot: /etc/upkeep/trusted_root.json
//	channels:
//	  stable/cloud: teleport   # images of this channel use this policy
//	default: release           # everything else
//
// Relative paths are relative to the file's directory. Errors name
// file:line, the field, what is wrong and what to do.
func LoadTrust(path string) (Trust, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Trust{}, fmt.Errorf("trust policy: %w", err)
	}
	return ParseTrust(data, path, os.ReadFile)
}

// ParseTrust parses a trust policy file's content; name is its path (for
// messages and relative paths) and read reads the files it names.
func ParseTrust(data []byte, name string, read func(string) ([]byte, error)) (Trust, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Trust{}, fmt.Errorf("%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f trustFile
	if err := dec.Decode(&f); err != nil {
		return Trust{}, fmt.Errorf("%s: %w (fields: policies.<name>.{keys, threshold, keyless[].{issuer, issuerRegExp, subject, subjectRegExp}, trustedRoot}, channels, default)", name, err)
	}
	at := func(path ...string) string {
		return fmt.Sprintf("%s:%d: %s", name, lineOf(&doc, path...), strings.Join(path, "."))
	}
	if len(f.Policies) == 0 {
		return Trust{}, fmt.Errorf("%s: no policies: define at least one under policies:", at("policies"))
	}
	dir := filepath.Dir(name)
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	t := Trust{Policies: map[string]Policy{}, Channels: f.Channels, Default: f.Default}
	for _, pn := range sortedKeys(f.Policies) {
		pf := f.Policies[pn]
		if !validPolicyName(pn) {
			return Trust{}, fmt.Errorf("%s: %q is not a policy name: use lower-case letters, digits and '-'", at("policies", pn), pn)
		}
		p := Policy{Threshold: pf.Threshold, Keyless: pf.Keyless}
		for i, k := range pf.Keys {
			if strings.Contains(k, "-----BEGIN") {
				p.KeysPEM = append(p.KeysPEM, []byte(k))
				p.KeyNames = append(p.KeyNames, fmt.Sprintf("%s key %d", pn, i+1))
				continue
			}
			b, err := read(abs(k))
			if err != nil {
				return Trust{}, fmt.Errorf("%s[%d]: %w; give a PEM public key file (cosign.pub) or PEM text", at("policies", pn, "keys"), i, err)
			}
			p.KeysPEM = append(p.KeysPEM, b)
			p.KeyNames = append(p.KeyNames, "file "+abs(k))
		}
		if pf.TrustedRoot != "" {
			b, err := read(abs(pf.TrustedRoot))
			if err != nil {
				return Trust{}, fmt.Errorf("%s: %w; give the path of a Sigstore trusted_root.json", at("policies", pn, "trustedRoot"), err)
			}
			p.TrustedRootJSON, p.TrustedRootName = b, abs(pf.TrustedRoot)
		}
		if _, err := compile(pn, p); err != nil {
			return Trust{}, fmt.Errorf("%s: %w", at("policies", pn), err)
		}
		t.Policies[pn] = p
	}
	for _, ch := range sortedKeys(f.Channels) {
		if _, ok := t.Policies[f.Channels[ch]]; !ok {
			return Trust{}, fmt.Errorf("%s: policy %q is not defined (policies: %s)", at("channels", ch), f.Channels[ch], strings.Join(sortedKeys(t.Policies), ", "))
		}
	}
	if f.Default != "" {
		if _, ok := t.Policies[f.Default]; !ok {
			return Trust{}, fmt.Errorf("%s: policy %q is not defined (policies: %s)", at("default"), f.Default, strings.Join(sortedKeys(t.Policies), ", "))
		}
	}
	return t, nil
}

// AddKeys adds a policy named name trusting keysPEM (e.g. the updater's
// --public-key flags), refusing to replace one of the file's.
func (t *Trust) AddKeys(name string, keysPEM [][]byte, keyNames []string) error {
	if _, dup := t.Policies[name]; dup {
		return fmt.Errorf("policy %q is defined twice: in the trust policy file and by the public key flags; keep one", name)
	}
	if t.Policies == nil {
		t.Policies = map[string]Policy{}
	}
	t.Policies[name] = Policy{KeysPEM: keysPEM, KeyNames: keyNames}
	return nil
}

func validPolicyName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// lineOf finds the line of the mapping key at path in doc, or of the
// deepest part of it that exists.
func lineOf(doc *yaml.Node, path ...string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		if n.Kind != yaml.MappingNode {
			break
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			break
		}
	}
	return line
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// resolve picks the policy for scope.
func (v *Verifier) policyFor(s Scope) (*compiled, string, error) {
	name, why := s.Policy, "named by the workload"
	if name == "" && s.Channel != "" {
		if p, ok := v.channels[s.Channel]; ok {
			name, why = p, fmt.Sprintf("of channel %s", s.Channel)
		}
	}
	if name == "" {
		name, why = v.defaultPolicy, "the default"
	}
	if name == "" {
		return nil, "", errors.New("no trust policy applies: neither the workload, its channel nor a default names one")
	}
	c, ok := v.policies[name]
	if !ok {
		return nil, "", fmt.Errorf("trust policy %q (%s) is not defined (policies: %s)", name, why, strings.Join(sortedKeys(v.policies), ", "))
	}
	return c, why, nil
}
