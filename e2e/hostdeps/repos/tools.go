package repos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// toolTimeout bounds every tool run; each finishes in well under a second.
const toolTimeout = 2 * time.Minute

// Tools lists the commands this package runs.
var Tools = []string{"gpg", "gpgconf", "dpkg-deb", "apt-ftparchive", "rpmbuild", "rpmsign", "createrepo_c"}

// MissingTools returns the names of the given commands not found on PATH.
func MissingTools(names ...string) []string {
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	return missing
}

// run runs argv in dir with env added, returning stdout; a failure carries
// the combined output.
func run(ctx context.Context, dir string, env []string, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w\n%s%s", strings.Join(argv, " "), err, out, stderr.String())
	}
	return out, nil
}
