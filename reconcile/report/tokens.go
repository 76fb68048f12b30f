package report

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
)

// Token file limits.
const (
	MaxTokenFileSize = 64 << 10
	MinTokenLength   = 16 // shorter is guessable; `openssl rand -hex 32` makes a good one
	MaxTokenLength   = 4096
)

// Tokens are the bearer tokens the server accepts. Only their SHA-256 sums
// are kept, so that comparing is constant time whatever the lengths and
// the tokens themselves never sit in memory longer than loading takes.
// Tokens read from a file can be reloaded from it while they are in use.
type Tokens struct {
	path string // "" unless loaded by LoadTokens
	sums atomic.Pointer[[][sha256.Size]byte]
}

// LoadTokens reads a token file: one token per line; blank lines and lines
// starting with '#' are ignored, so tokens can be labelled and rotated (add
// the new one, move the updaters, remove the old one). Errors name the file
// and line, never the token.
func LoadTokens(path string) (*Tokens, error) {
	sums, err := readTokenSums(path)
	if err != nil {
		return nil, err
	}
	t := &Tokens{path: path}
	t.sums.Store(&sums)
	return t, nil
}

// Reload reads the file the tokens were loaded from again, so that tokens
// can be rotated without a restart. A file that no longer reads or parses
// changes nothing: the tokens loaded before stay in use and the error says
// why. changed is whether the set of tokens differs from before.
func (t *Tokens) Reload() (changed bool, err error) {
	if t == nil || t.path == "" {
		return false, errors.New("these tokens were not loaded from a file")
	}
	sums, err := readTokenSums(t.path)
	if err != nil {
		return false, err
	}
	old := t.list()
	t.sums.Store(&sums)
	return !sameSums(old, sums), nil
}

// sameSums reports whether a and b hold the same tokens, in any order.
func sameSums(a, b [][sha256.Size]byte) bool {
	if len(a) != len(b) {
		return false
	}
	in := make(map[[sha256.Size]byte]int, len(a))
	for _, s := range a {
		in[s]++
	}
	for _, s := range b {
		if in[s] == 0 {
			return false
		}
		in[s]--
	}
	return true
}

func readTokenSums(path string) ([][sha256.Size]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the report token file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTokenFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the report token file %s: %w", path, err)
	}
	if len(data) > MaxTokenFileSize {
		return nil, fmt.Errorf("report token file %s is larger than %d bytes; is it the right file?", path, MaxTokenFileSize)
	}
	return parseTokenSums(path, data)
}

// ParseTokens reads the token file format from data; name is used in errors.
func ParseTokens(name string, data []byte) (*Tokens, error) {
	sums, err := parseTokenSums(name, data)
	if err != nil {
		return nil, err
	}
	t := &Tokens{}
	t.sums.Store(&sums)
	return t, nil
}

func parseTokenSums(name string, data []byte) ([][sha256.Size]byte, error) {
	var sums [][sha256.Size]byte
	var errs []error
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		switch {
		case len(line) < MinTokenLength:
			errs = append(errs, fmt.Errorf("%s:%d: the token is %d bytes, shorter than %d: make one with `openssl rand -hex 32`", name, i+1, len(line), MinTokenLength))
		case len(line) > MaxTokenLength:
			errs = append(errs, fmt.Errorf("%s:%d: the token is longer than %d bytes", name, i+1, MaxTokenLength))
		case bytes.ContainsFunc(line, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			errs = append(errs, fmt.Errorf("%s:%d: the token holds white space or a control character: one token per line, nothing else", name, i+1))
		default:
			sums = append(sums, sha256.Sum256(line))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("%s holds no token: write one per line", name)
	}
	return sums, nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.list())
}

// list is the tokens' sums now (none for a zero Tokens).
func (t *Tokens) list() [][sha256.Size]byte {
	if p := t.sums.Load(); p != nil {
		return *p
	}
	return nil
}

// Match reports whether token is one of t, comparing against every token
// in constant time, so neither which token matched nor how much of it can
// be learnt from timing.
func (t *Tokens) Match(token string) bool {
	if t == nil || token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	sums := t.list()
	match := 0
	for i := range sums {
		match |= subtle.ConstantTimeCompare(sum[:], sums[i][:])
	}
	return match == 1
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header value (the scheme in any case, RFC 6750), or false.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
