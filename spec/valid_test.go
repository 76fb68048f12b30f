package spec

import (
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestLoadDirReadsAValidFleet(t *testing.T) {
	st, errs := LoadDir("testdata/valid")
	if errs != nil {
		t.Fatalf("testdata/valid: %v", errs)
	}

	var cps []ControlPlane
	for _, cp := range st.ControlPlanes {
		cps = append(cps, *cp)
	}
	wantCPs := []ControlPlane{
		{Name: "cloud", Version: "17.2.3", Agents: ">= 16.0.0, < 17.3.0", Pos: Position{"controlplanes.yaml", 5, 9}},
		{Name: "onprem", Version: "16.4.1", Pos: Position{"controlplanes.yaml", 13, 9}}, // written v16.4.1
	}
	if !reflect.DeepEqual(cps, wantCPs) {
		t.Errorf("control planes:\n got %+v\nwant %+v", cps, wantCPs)
	}

	var chs []Channel
	for _, ch := range st.Channels {
		chs = append(chs, *ch)
	}
	wantChs := []Channel{
		{Name: "lts/onprem", ControlPlane: "onprem", Version: "15.9.0", Pos: Position{"channels/onprem/lts.yml", 4, 9}},
		{Name: "paused", ControlPlane: "onprem", Version: NoVersion, Pos: Position{"channels/stable.yaml", 22, 9}},
		{Name: "rolling/cloud", ControlPlane: "cloud", Follow: FollowControlPlane, Critical: true, Pos: Position{"channels/stable.yaml", 12, 9}},
		{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.1.0", Pos: Position{"channels/stable.yaml", 4, 9}}, // written v17.1.0
	}
	if !reflect.DeepEqual(chs, wantChs) {
		t.Errorf("channels:\n got %+v\nwant %+v", chs, wantChs)
	}

	for name, want := range map[string]string{
		"rolling/cloud": "17.2.3", // follows its control plane
		"stable/cloud":  "17.1.0",
		"paused":        "",
		"lts/onprem":    "15.9.0",
	} {
		if got := st.ResolvedVersion(st.Channel(name)); got != want {
			t.Errorf("ResolvedVersion(%s) = %q, want %q", name, got, want)
		}
	}

	berlin, _ := time.LoadLocation("Europe/Berlin")
	eu := st.Group("eu-prod")
	if eu == nil {
		t.Fatal("group eu-prod missing")
	}
	wantEU := Group{
		Name: "eu-prod", Channel: "stable/cloud", Timezone: "Europe/Berlin", Location: eu.Location,
		UpdateDuration: 20 * time.Minute, Order: 2, Pos: Position{"groups/eu.yaml", 4, 9},
		Windows: []Window{
			{Days: []time.Weekday{time.Tuesday, time.Thursday}, Start: 2 * time.Hour, Duration: 4 * time.Hour},
			{Start: 23*time.Hour + 30*time.Minute, Duration: 90 * time.Minute},
		},
		Freezes: []Freeze{
			// An end date includes its whole day: the freeze ends at the next midnight.
			{Name: "year-end", Start: time.Date(2026, 12, 20, 0, 0, 0, 0, berlin), End: time.Date(2027, 1, 5, 0, 0, 0, 0, berlin), AllowCritical: true},
			{Name: "launch", Start: time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 1, 19, 0, 0, 0, time.UTC)},
		},
	}
	if eu.Location.String() != "Europe/Berlin" {
		t.Errorf("eu-prod location = %v", eu.Location)
	}
	if !groupsEqual(*eu, wantEU) {
		t.Errorf("eu-prod:\n got %+v\nwant %+v", *eu, wantEU)
	}

	us := st.Group("us-canary")
	if us == nil || us.UpdateDuration != DefaultUpdateDuration || us.Order != 1 || len(us.Windows) != 0 || us.Location.String() != "America/New_York" {
		t.Errorf("us-canary = %+v, want the default update duration, order 1, no windows, America/New_York", us)
	}
	factory := st.Group("factory")
	if factory == nil || len(factory.Windows) != 1 || factory.Windows[0].Duration != MaxWindowDuration || factory.Location != time.UTC {
		t.Errorf("factory = %+v, want one week-long window in UTC", factory)
	}
	if names := groupNames(st); !slices.Equal(names, []string{"eu-prod", "factory", "us-canary"}) {
		t.Errorf("groups = %v, want sorted by name", names)
	}
}

func groupNames(st *State) []string {
	var names []string
	for _, g := range st.Groups {
		names = append(names, g.Name)
	}
	return names
}

// groupsEqual compares groups with time.Time.Equal for the freezes.
func groupsEqual(a, b Group) bool {
	af, bf := a.Freezes, b.Freezes
	a.Freezes, b.Freezes = nil, nil
	if !reflect.DeepEqual(a, b) || len(af) != len(bf) {
		return false
	}
	for i := range af {
		if af[i].Name != bf[i].Name || !af[i].Start.Equal(bf[i].Start) || !af[i].End.Equal(bf[i].End) || af[i].AllowCritical != bf[i].AllowCritical {
			return false
		}
	}
	return true
}

// Without its .upkeepignore, the test fleet's drafts are read and clash;
// hidden folders and files that are not YAML stay unread regardless.
func TestLoadHonoursUpkeepIgnore(t *testing.T) {
	fsys := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS("testdata/valid"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == IgnoreFile {
			return err
		}
		data, err := os.ReadFile("testdata/valid/" + p)
		fsys[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, errs := Load(fsys)
	var files []string
	for _, e := range errs {
		files = append(files, e.Pos.File)
	}
	files = slices.Compact(files)
	if want := []string{"drafts/next.yaml", "groups/next.draft.yaml"}; !slices.Equal(files, want) {
		t.Errorf("files with errors = %v, want %v:\n%v", files, want, errs)
	}
}

func TestLoadIgnorePatterns(t *testing.T) {
	bad := []byte("kind: Nonsense\n")
	fsys := fleet(nil)
	fsys[IgnoreFile] = &fstest.MapFile{Data: []byte("# comment\n\n/old\n*.wip.yaml\n!keep.wip.yaml\nvendor/**/x.yml\r\n")}
	fsys["old/a.yaml"] = &fstest.MapFile{Data: bad}
	fsys["nested/old/b.yaml"] = &fstest.MapFile{Data: bad} // "/old" is anchored at the root
	fsys["c.wip.yaml"] = &fstest.MapFile{Data: bad}
	fsys["keep.wip.yaml"] = &fstest.MapFile{Data: bad} // negated
	fsys["vendor/a/b/x.yml"] = &fstest.MapFile{Data: bad}
	fsys["notes.json"] = &fstest.MapFile{Data: bad}
	fsys[".github/workflows/ci.yaml"] = &fstest.MapFile{Data: bad}
	_, errs := Load(fsys)
	var files []string
	for _, e := range errs {
		files = append(files, e.Pos.File)
	}
	files = slices.Compact(files)
	if want := []string{"keep.wip.yaml", "nested/old/b.yaml"}; !slices.Equal(files, want) {
		t.Errorf("files with errors = %v, want %v:\n%v", files, want, errs)
	}
}

func TestLoadEmptyRepositoryIsValid(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no files":         {},
		"only empty docs":  {"a.yaml": {Data: []byte("---\n# nothing\n---\n\n")}, "b.yml": {Data: nil}},
		"an explicit null": {"a.yaml": {Data: []byte("null\n---\n~\n")}},
		"only other files": {"README.md": {Data: []byte("# fleet\n")}},
	} {
		st, errs := Load(fsys)
		if errs != nil || st == nil || len(st.ControlPlanes)+len(st.Channels)+len(st.Groups) != 0 {
			t.Errorf("%s: state %+v, errors %v; want an empty valid state", name, st, errs)
		}
	}
}

func TestLoadKeepsValidDocumentsWhenOthersFail(t *testing.T) {
	st, errs := Load(fleet(map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: beta
spec:
  controlPlane: cloud
  version: 17.9.0
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: broken
spec:
  channel: beta
  timezone: Nowhere/Land
`}))
	if len(errs) != 2 {
		t.Fatalf("errors = %v, want 2", errs)
	}
	// The channel breaks a rule between documents and stays for diff; the
	// group breaks its own field rule and is left out.
	if st.Channel("beta") == nil || st.Channel("stable/cloud") == nil || st.Group("broken") != nil || st.Group("eu-prod") == nil {
		t.Errorf("state kept channels %v and groups %v", st.Channels, groupNames(st))
	}
}

func TestLoadDirRefusesWhatIsNotADirectory(t *testing.T) {
	for _, dir := range []string{"testdata/missing", "testdata/valid/controlplanes.yaml"} {
		st, errs := LoadDir(dir)
		if st == nil || len(errs) != 1 || errs[0].Pos.File != dir {
			t.Errorf("LoadDir(%s) = %v, %v; want one error naming it", dir, st, errs)
		}
	}
}

// Files are checked in parallel; the result must not depend on scheduling.
func TestLoadIsDeterministic(t *testing.T) {
	fsys := fleetFS(60, 60)
	fsys["channels/dup.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: stable/ch0001\nspec:\n  controlPlane: cp9\n  version: 1.0.0\n")}
	fsys["groups/g0007.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata:\n  name: g0007\nspec:\n  channel: x\n  timezone: UTC\n  bogus: 1\n")}
	_, first := Load(fsys)
	if len(first) != 3 {
		t.Fatalf("errors = %v, want 3", first)
	}
	for range 20 {
		if _, again := Load(fsys); !slices.Equal(errorLines(again), errorLines(first)) {
			t.Fatalf("errors changed between loads:\n%v\n---\n%v", first, again)
		}
	}
}

func TestLoadDirRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/fleet.yaml", []byte(baseFleet), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := t.TempDir() + "/outside.yaml"
	if err := os.WriteFile(secret, []byte("token: hunter2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, dir+"/link.yaml"); err != nil {
		t.Skipf("symlinks: %v", err)
	}
	st, errs := LoadDir(dir)
	if got := errorLines(errs); len(got) != 1 || !strings.HasPrefix(got[0], "link.yaml: is a symbolic link that leaves the repository") {
		t.Errorf("errors = %v", got)
	}
	if st.Channel("stable/cloud") == nil {
		t.Error("the other files were not loaded")
	}
}
