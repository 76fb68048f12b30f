package kube

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Image is a container image reference split into its parts:
// Repo[:Tag][@Digest]. Repo keeps its registry host and port
// ("registry.example.com:5000/org/agent").
type Image struct {
	Repo   string
	Tag    string // "" when the reference has none
	Digest string // "sha256:<64 hex>", "" when the reference has none
}

// ParseImage splits a container image reference. It is strict about the
// digest (only sha256, 64 lower-case hex digits) because the updater writes
// digests back and compares them; a tag is anything after the last ':' that
// follows the last '/'.
func ParseImage(ref string) (Image, error) {
	if ref == "" {
		return Image{}, fmt.Errorf("image reference is empty")
	}
	if strings.ContainsAny(ref, " \t\r\n") {
		return Image{}, fmt.Errorf("image reference %q contains white space", ref)
	}
	var img Image
	name := ref
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		name, img.Digest = ref[:i], ref[i+1:]
		if err := checkDigest(img.Digest); err != nil {
			return Image{}, fmt.Errorf("image reference %q: %w", ref, err)
		}
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, img.Tag = name[:i], name[i+1:]
		if img.Tag == "" {
			return Image{}, fmt.Errorf("image reference %q has an empty tag", ref)
		}
	}
	if name == "" || strings.HasSuffix(name, "/") || strings.HasPrefix(name, "/") {
		return Image{}, fmt.Errorf("image reference %q has no repository", ref)
	}
	img.Repo = name
	return img, nil
}

func checkDigest(d string) error {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok {
		return fmt.Errorf("digest %q is not sha256:<hex>", d)
	}
	if len(hex) != 64 {
		return fmt.Errorf("digest %q: want 64 hex digits, got %d", d, len(hex))
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("digest %q is not lower-case hex", d)
		}
	}
	return nil
}

// String writes the reference back: repo[:tag][@digest].
func (i Image) String() string {
	s := i.Repo
	if i.Tag != "" {
		s += ":" + i.Tag
	}
	if i.Digest != "" {
		s += "@" + i.Digest
	}
	return s
}

// Version is the semantic version the tag names, without a leading "v", or
// "" when the tag is missing or not a semantic version (a digest-only image,
// "latest", a build hash). An unknown version means the workload is updated
// to the target: the updater never guesses what runs.
func (i Image) Version() string {
	if i.Tag == "" {
		return ""
	}
	v, err := semver.StrictNewVersion(strings.TrimPrefix(i.Tag, "v"))
	if err != nil {
		return ""
	}
	return v.String()
}

// TagFor is the tag that names version in this image's convention: with a
// leading "v" when the current tag has one ("v17.2.3"), without otherwise
// (Teleport's images are tagged "17.2.3").
func (i Image) TagFor(version string) string {
	version = strings.TrimPrefix(version, "v")
	if strings.HasPrefix(i.Tag, "v") && i.Version() != "" {
		return "v" + version
	}
	return version
}

// Pinned is repo:tag@digest, the form the updater writes: the tag says which
// version runs, the digest is what the runtime pulls and what was verified.
func Pinned(repo, tag, digest string) string {
	return Image{Repo: repo, Tag: tag, Digest: digest}.String()
}
