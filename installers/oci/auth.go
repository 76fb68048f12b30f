package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerConfigKeychain serves credentials from a docker config.json or a
// Kubernetes pull secret, matched by registry host.
type dockerConfigKeychain struct {
	auths map[string]authn.AuthConfig // key: normalised registry host
}

// KeychainFromDockerConfig parses registry credentials from the bytes of a
// docker config.json or a Kubernetes image pull secret: the
// ".dockerconfigjson" value ({"auths":{...}}) or the legacy ".dockercfg"
// value ({"<registry>":{...}}). Entries may give "auth" (base64 user:pass),
// "username"/"password", "identitytoken" or "registrytoken". Credential
// helpers (credsStore, credHelpers) cannot run inside a pod and are refused
// when they are the only source. Errors never echo credential values.
func KeychainFromDockerConfig(data []byte) (authn.Keychain, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("registry credentials: not a docker config JSON object: %s", jsonErrorWithoutValue(err))
	}
	raw := top
	if a, ok := top["auths"]; ok {
		raw = nil
		if err := json.Unmarshal(a, &raw); err != nil {
			return nil, fmt.Errorf("registry credentials: field auths: expected an object of registry entries: %s", jsonErrorWithoutValue(err))
		}
	} else {
		_, store := top["credsStore"]
		_, helpers := top["credHelpers"]
		if store || helpers {
			return nil, errors.New("registry credentials: the config uses credential helpers (credsStore/credHelpers), which cannot run here; give a config with an \"auths\" section, e.g. from `kubectl create secret docker-registry`")
		}
	}
	kc := &dockerConfigKeychain{auths: map[string]authn.AuthConfig{}}
	for key, entry := range raw {
		host, err := registryHost(key)
		if err != nil {
			return nil, fmt.Errorf("registry credentials: auths key %q: %w", key, err)
		}
		var ac authn.AuthConfig
		if err := json.Unmarshal(entry, &ac); err != nil {
			return nil, fmt.Errorf("registry credentials: auths[%q]: %s", key, jsonErrorWithoutValue(err))
		}
		if ac == (authn.AuthConfig{}) {
			return nil, fmt.Errorf("registry credentials: auths[%q]: no auth, username/password or token", key)
		}
		kc.auths[host] = ac
	}
	return kc, nil
}

// Resolve implements authn.Keychain. Unknown registries are anonymous.
func (k *dockerConfigKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	host, err := registryHost(target.RegistryStr())
	if err != nil {
		return authn.Anonymous, nil
	}
	if ac, ok := k.auths[host]; ok {
		return authn.FromConfig(ac), nil
	}
	return authn.Anonymous, nil
}

// registryHost normalises a docker config key ("https://index.docker.io/v1/",
// "registry.example.com:5000", "http://host/path") to a lower-case host[:port].
func registryHost(key string) (string, error) {
	k := strings.TrimSpace(key)
	if k == "" {
		return "", errors.New("empty registry name")
	}
	if strings.Contains(k, "://") {
		u, err := url.Parse(k)
		if err != nil || u.Host == "" {
			return "", errors.New("not a registry host or URL")
		}
		k = u.Host
	} else if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i]
	}
	k = strings.ToLower(k)
	if k == "docker.io" || k == "index.docker.io" || k == "registry-1.docker.io" {
		return name.DefaultRegistry, nil
	}
	return k, nil
}

// jsonErrorWithoutValue describes a JSON error without quoting input, which
// may be a password.
func jsonErrorWithoutValue(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("JSON syntax error at byte %d", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Sprintf("field %q: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	}
	if strings.Contains(err.Error(), "decode auth field") {
		return "field auth: not base64 of user:password"
	}
	return "malformed JSON"
}
