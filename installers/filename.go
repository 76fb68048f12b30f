package installers

import (
	"regexp"
	"strings"
)

// packageFile finds a package file or a URL in a line of output.
var packageFile = regexp.MustCompile(`\S+\.(?:deb|rpm)\b|[a-z]+://\S+`)

// withFileName makes a checksum error's detail name the file: apt prints
// "Hash Sum mismatch" (or "File has unexpected size") on a line of its own
// under an "Err:" header, and the file only in its "E: Failed to fetch URL"
// summary; an operator needs the file to tell a broken mirror from a
// tampered package. A line that already names one is kept as it is;
// otherwise the output's last line naming a package file or URL is added.
func withFileName(detail, output string) string {
	if packageFile.MatchString(detail) {
		return detail
	}
	lines := strings.Split(output, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); packageFile.MatchString(l) {
			if len(l) > 300 {
				l = l[:300] + "..."
			}
			return detail + " (" + l + ")"
		}
	}
	return detail
}
