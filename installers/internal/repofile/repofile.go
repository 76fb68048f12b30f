// Package repofile reads yum/dnf/zypper .repo files (INI) and audits them:
// it refuses configurations that would weaken signature checks or trust a
// key fetched from the network. Findings name file, line and repository.
package repofile

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Value is one key's value with where it was set.
type Value struct {
	Text string
	Line int
}

// Section is one [id] section of a file.
type Section struct {
	ID   string
	File string
	Line int
	Keys map[string]Value // lower-case key
}

// Get returns the value of key and whether it is set.
func (s Section) Get(key string) (Value, bool) {
	v, ok := s.Keys[key]
	return v, ok
}

// Parse reads INI sections. Indented lines continue the previous value (dnf
// allows gpgkey= over several lines); '#' and ';' start comments.
func Parse(file string, data []byte) ([]Section, error) {
	var secs []Section
	var cur *Section
	var lastKey string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if (raw[0] == ' ' || raw[0] == '\t') && cur != nil && lastKey != "" {
			v := cur.Keys[lastKey]
			v.Text = strings.TrimSpace(v.Text + " " + line)
			cur.Keys[lastKey] = v
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return secs, fmt.Errorf("%s:%d: section header %q lacks a closing ]", file, n, line)
			}
			secs = append(secs, Section{ID: strings.TrimSpace(line[1 : len(line)-1]), File: file, Line: n, Keys: map[string]Value{}})
			cur, lastKey = &secs[len(secs)-1], ""
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return secs, fmt.Errorf("%s:%d: expected key=value, got %q", file, n, line)
		}
		if cur == nil {
			return secs, fmt.Errorf("%s:%d: %q is outside any [section]", file, n, line)
		}
		lastKey = strings.ToLower(strings.TrimSpace(k))
		cur.Keys[lastKey] = Value{Text: strings.TrimSpace(v), Line: n}
	}
	return secs, sc.Err()
}

// ParseBool reads yum/zypper booleans; ok is false for anything else.
func ParseBool(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "yes", "true", "on":
		return true, true
	case "0", "no", "false", "off":
		return false, true
	}
	return false, false
}

// Config is a main section (may be empty) plus the repository sections.
type Config struct {
	Main  Section
	Repos []Section
}

// Load reads mainFile (missing is fine; its [main] becomes Main and its
// other sections are repositories) and every *.repo file in dirs, sorted.
func Load(mainFile string, dirs []string) (Config, error) {
	cfg := Config{Main: Section{ID: "main", File: mainFile, Keys: map[string]Value{}}}
	if mainFile != "" {
		data, err := os.ReadFile(mainFile)
		if err != nil && !os.IsNotExist(err) {
			return cfg, err
		}
		secs, err := Parse(mainFile, data)
		if err != nil {
			return cfg, err
		}
		for _, s := range secs {
			if s.ID == "main" {
				cfg.Main = s
			} else {
				cfg.Repos = append(cfg.Repos, s)
			}
		}
	}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.repo"))
		if err != nil {
			return cfg, err
		}
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return cfg, err
			}
			secs, err := Parse(f, data)
			if err != nil {
				return cfg, err
			}
			cfg.Repos = append(cfg.Repos, secs...)
		}
	}
	return cfg, nil
}

// Enabled lists the enabled repositories (enabled= defaults to on).
func (c Config) Enabled() []Section {
	var out []Section
	for _, r := range c.Repos {
		if v, ok := r.Get("enabled"); ok {
			if on, valid := ParseBool(v.Text); valid && !on {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// IDs lists the IDs of the enabled repositories.
func (c Config) IDs() []string {
	var ids []string
	for _, r := range c.Enabled() {
		ids = append(ids, r.ID)
	}
	return ids
}

// Finding is one reason to refuse a configuration.
type Finding struct {
	Check   string // the check's name
	File    string
	Line    int
	Repo    string
	Message string // what is wrong and how to fix it
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: repository %q: %s", f.File, f.Line, f.Repo, f.Message)
}

// Check is one named audit rule over one enabled repository.
type Check struct {
	Name string
	Run  func(main, repo Section) (Finding, bool)
}

// Audit runs every check on every enabled repository, in order.
func Audit(c Config, checks []Check) []Finding {
	var out []Finding
	for _, r := range c.Enabled() {
		for _, ch := range checks {
			if f, bad := ch.Run(c.Main, r); bad {
				f.Check, f.Repo = ch.Name, r.ID
				if f.File == "" {
					f.File, f.Line = r.File, r.Line
				}
				out = append(out, f)
			}
		}
	}
	return out
}

// Effective returns a boolean key from repo, else from main, else def, with
// where it was set (the repo header when defaulted).
func Effective(main, repo Section, key string, def bool) (value bool, file string, line int) {
	for _, s := range []Section{repo, main} {
		if v, ok := s.Get(key); ok {
			if b, valid := ParseBool(v.Text); valid {
				return b, s.File, v.Line
			}
			// An unreadable value: dnf and zypper reject it too; treat as off
			// so the audit names it.
			return false, s.File, v.Line
		}
	}
	return def, repo.File, repo.Line
}

// GPGKeys splits a gpgkey= value into URLs.
func GPGKeys(repo Section) ([]string, Value) {
	v, ok := repo.Get("gpgkey")
	if !ok {
		return nil, v
	}
	return strings.FieldsFunc(v.Text, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }), v
}
