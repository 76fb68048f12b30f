//go:build tools

package tools

import (
	_ "cuelang.org/go/cue"
	_ "github.com/Masterminds/semver/v3"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "gopkg.in/yaml.v3"
)
