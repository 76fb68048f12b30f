package repofile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	data := "# comment\n[main]\ngpgcheck=1\n\n[a]\nname = A\ngpgkey=file:///k1\n  file:///k2\nenabled=0\n; other\n[b]\nbaseurl=http://x/\n"
	secs, err := Parse("f.repo", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(secs) != 3 || secs[1].ID != "a" || secs[1].Line != 5 {
		t.Fatalf("sections = %+v", secs)
	}
	keys, v := GPGKeys(secs[1])
	if strings.Join(keys, " ") != "file:///k1 file:///k2" || v.Line != 7 {
		t.Fatalf("gpgkeys = %q line %d", keys, v.Line)
	}
	for _, bad := range []string{"[a\n", "[a]\nnovalue\n", "key=outside\n"} {
		if _, err := Parse("bad.repo", []byte(bad)); err == nil || !strings.Contains(err.Error(), "bad.repo:") {
			t.Errorf("Parse(%q) error = %v, want one naming the file and line", bad, err)
		}
	}
}

func TestLoadAndAudit(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.conf"), []byte("[main]\ngpgcheck=1\n[inmain]\nbaseurl=http://m/\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.repo"), []byte("[off]\ngpgcheck=0\n[disabled]\nenabled=0\ngpgcheck=0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.repo"), []byte("[ok]\nbaseurl=http://x/\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "ignored.txt"), []byte("[x]\n"), 0o644)
	cfg, err := Load(filepath.Join(dir, "main.conf"), []string{dir, filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.IDs(), " "); got != "inmain ok off" {
		t.Fatalf("enabled IDs = %q", got)
	}
	checks := []Check{{Name: "gpgcheck", Run: func(main, repo Section) (Finding, bool) {
		on, file, line := Effective(main, repo, "gpgcheck", false)
		return Finding{File: file, Line: line, Message: "gpgcheck is off"}, !on
	}}}
	f := Audit(cfg, checks)
	if len(f) != 1 || f[0].Repo != "off" || f[0].Line != 2 || !strings.HasSuffix(f[0].File, "b.repo") {
		t.Fatalf("findings = %+v", f)
	}
	if !strings.Contains(f[0].String(), `b.repo:2: repository "off": gpgcheck is off`) {
		t.Fatalf("finding text = %s", f[0])
	}
}
