package oci_test

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"upkeep.dev/upkeep/installers/oci"
)

func TestKeychainFromDockerConfig(t *testing.T) {
	// base64("robot:s3cret")
	const auth = "cm9ib3Q6czNjcmV0"
	tests := []struct {
		scenario string
		config   string
		registry string // registry to resolve
		wantUser string // "" = anonymous
		wantErr  string
	}{
		{scenario: "a dockerconfigjson entry for a host matches that host",
			config: `{"auths":{"registry.example.com":{"auth":"` + auth + `"}}}`, registry: "registry.example.com", wantUser: "robot"},
		{scenario: "an entry written as a URL matches its host and port",
			config: `{"auths":{"https://registry.example.com:5000/v2/":{"username":"robot","password":"s3cret"}}}`, registry: "registry.example.com:5000", wantUser: "robot"},
		{scenario: "Docker Hub's legacy key matches index.docker.io",
			config: `{"auths":{"https://index.docker.io/v1/":{"auth":"` + auth + `"}}}`, registry: "docker.io", wantUser: "robot"},
		{scenario: "a legacy dockercfg without auths is read",
			config: `{"registry.example.com":{"auth":"` + auth + `"}}`, registry: "registry.example.com", wantUser: "robot"},
		{scenario: "host names match case-insensitively",
			config: `{"auths":{"Registry.Example.com":{"auth":"` + auth + `"}}}`, registry: "registry.example.com", wantUser: "robot"},
		{scenario: "another registry stays anonymous",
			config: `{"auths":{"registry.example.com":{"auth":"` + auth + `"}}}`, registry: "other.example.com"},
		{scenario: "credential helpers alone are refused",
			config: `{"credsStore":"desktop"}`, wantErr: "credential helpers"},
		{scenario: "an auth that is not base64 is refused without echoing it",
			config: `{"auths":{"registry.example.com":{"auth":"not-base64-s3cret!"}}}`, wantErr: "not base64"},
		{scenario: "an entry with nothing in it is refused",
			config: `{"auths":{"registry.example.com":{}}}`, wantErr: "no auth"},
		{scenario: "broken JSON is refused without echoing it",
			config: `{"auths":{"registry.example.com":{"password":"s3cret"`, wantErr: "docker config"},
		{scenario: "auths of the wrong type is refused",
			config: `{"auths":["s3cret"]}`, wantErr: "field auths"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			kc, err := oci.KeychainFromDockerConfig([]byte(tt.config))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error echoes a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			reg, err := name.NewRegistry(tt.registry)
			if err != nil {
				t.Fatal(err)
			}
			a, err := kc.Resolve(reg)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := a.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Username != tt.wantUser {
				t.Errorf("user = %q, want %q", cfg.Username, tt.wantUser)
			}
			if tt.wantUser == "" && a != authn.Anonymous {
				t.Errorf("got %T, want anonymous", a)
			}
		})
	}
}
