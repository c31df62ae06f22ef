package daemon

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func stateWith(names ...string) state {
	st := state{Version: stateVersion}
	for i, name := range names {
		st.Networks = append(st.Networks, netState{Name: name, VNI: uint32(256 + i), Subnet: netip.MustParsePrefix("10.0.0.0/24"), MTU: 1450,
			Endpoints: []epState{{ID: "e" + name, Netns: "/run/netns/" + name, IfName: "eth0", IP: netip.MustParsePrefix("10.0.0.2/24"), MAC: "02:42:0a:00:00:02", Veth: "veth0"}}})
	}
	return st
}

func mustSave(t *testing.T, dir string, st state) {
	t.Helper()
	if err := saveState(dir, st); err != nil {
		t.Fatal(err)
	}
}

func mustLoad(t *testing.T, dir string) state {
	t.Helper()
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, statErr := os.Stat(filepath.Join(dir, stateFileName))
	if st.loaded != (statErr == nil) {
		t.Fatalf("loadState: loaded %v, but the file's stat says %v", st.loaded, statErr)
	}
	st.loaded = false // compared with states that were never loaded
	return st
}

// Every save keeps the file it replaces as state.json.prev and leaves
// no temporary file.
func TestSaveStateKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	if st := mustLoad(t, dir); len(st.Networks) != 0 {
		t.Fatalf("empty dir loaded %+v", st)
	}
	one, two := stateWith("a"), stateWith("a", "b")
	mustSave(t, dir, one)
	if _, err := os.Stat(filepath.Join(dir, prevFileName)); !os.IsNotExist(err) {
		t.Errorf("first save made a previous copy: %v", err)
	}
	mustSave(t, dir, two)
	if got := mustLoad(t, dir); !reflect.DeepEqual(got, two) {
		t.Errorf("loaded %+v, want %+v", got, two)
	}
	prev, err := os.ReadFile(filepath.Join(dir, prevFileName))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := parseState(prev); err != nil || !reflect.DeepEqual(got, one) {
		t.Errorf("previous copy is %+v (%v), want %+v", got, err, one)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("state dir holds %v, want state.json and state.json.prev", ents)
	}
}

// A temporary file that a crash left (between its creation and its
// rename) is removed at the next load, and does not change the state.
func TestLoadStateRemovesTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	mustSave(t, dir, stateWith("a"))
	stale := filepath.Join(dir, ".state.json.123456")
	if err := os.WriteFile(stale, []byte(`{"version":1,"networks":[{"name":"half"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, dir); !reflect.DeepEqual(got, stateWith("a")) {
		t.Errorf("loaded %+v", got)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
}

// A damaged state file is refused with one line that says what is wrong
// and what to do; neither it nor the previous copy is touched, and
// following the advice starts from the previous copy.
func TestLoadStateRefusesDamagedFile(t *testing.T) {
	good := stateWith("a", "b")
	dup := stateWith("a", "b")
	dup.Networks[1].Name = "a"
	dupEP := stateWith("a")
	dupEP.Networks[0].Endpoints = append(dupEP.Networks[0].Endpoints, dupEP.Networks[0].Endpoints[0])
	var full bytes.Buffer
	{
		dir := t.TempDir()
		mustSave(t, dir, good)
		b, _ := os.ReadFile(filepath.Join(dir, stateFileName))
		full.Write(b)
	}
	marshal := func(st state) []byte {
		dir := t.TempDir()
		mustSave(t, dir, st)
		b, _ := os.ReadFile(filepath.Join(dir, stateFileName))
		return b
	}
	cases := map[string][]byte{
		"empty":                 nil,
		"blank":                 []byte("\n \n"),
		"truncated at 1 byte":   full.Bytes()[:1],
		"truncated in half":     full.Bytes()[:full.Len()/2],
		"truncated before last": full.Bytes()[:full.Len()-3],
		"garbage":               []byte("\x00\x00\x00\x00garbage"),
		"zeros":                 make([]byte, 4096), // a block a crash left unwritten
		"not an object":         []byte("[1,2,3]\n"),
		"network twice":         marshal(dup),
		"endpoint twice":        marshal(dupEP),
	}
	for name, data := range cases {
		for _, withPrev := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "", true: " with prev"}[withPrev], func(t *testing.T) {
				dir := t.TempDir()
				path, prev := filepath.Join(dir, stateFileName), filepath.Join(dir, prevFileName)
				if withPrev {
					mustSave(t, dir, stateWith("a"))
					mustSave(t, dir, good) // state.json.prev holds "a" only
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				prevBefore, _ := os.ReadFile(prev)
				_, err := loadState(dir)
				if err == nil {
					t.Fatal("loaded a damaged state file")
				}
				msg := err.Error()
				if strings.Contains(msg, "\n") || !strings.Contains(msg, path+" is corrupt") {
					t.Errorf("message %q: want one line saying %s is corrupt", msg, path)
				}
				if withPrev {
					if want := "`mv " + prev + " " + path + "`"; !strings.Contains(msg, want) {
						t.Errorf("message %q does not give %s", msg, want)
					}
				} else if !strings.Contains(msg, "no good earlier copy") || !strings.Contains(msg, "move "+path+" away") {
					t.Errorf("message %q: want it to say there is no earlier copy and how to start empty", msg)
				}
				if b, _ := os.ReadFile(path); !bytes.Equal(b, data) && !(len(b) == 0 && len(data) == 0) {
					t.Errorf("the damaged file was changed")
				}
				if b, _ := os.ReadFile(prev); !bytes.Equal(b, prevBefore) {
					t.Errorf("the previous copy was changed")
				}
				if withPrev {
					if err := os.Rename(prev, path); err != nil {
						t.Fatal(err)
					}
					if got := mustLoad(t, dir); !reflect.DeepEqual(got, stateWith("a")) {
						t.Errorf("after mv: loaded %+v", got)
					}
				}
			})
		}
	}
}

// A damaged previous copy is not offered.
func TestLoadStateDamagedPrevious(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, stateFileName), []byte("{"), 0o644)
	os.WriteFile(filepath.Join(dir, prevFileName), []byte("{\"vers"), 0o644)
	_, err := loadState(dir)
	if err == nil || !strings.Contains(err.Error(), "no good earlier copy") {
		t.Errorf("got %v, want a refusal that offers no earlier copy", err)
	}
}

// A newer version is not called corrupt.
func TestLoadStateNewerVersion(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, stateFileName), []byte(`{"version": 9, "networks": []}`), 0o644)
	_, err := loadState(dir)
	if err == nil || !strings.Contains(err.Error(), "has version 9") || strings.Contains(err.Error(), "corrupt") {
		t.Errorf("got %v, want a version error", err)
	}
}
