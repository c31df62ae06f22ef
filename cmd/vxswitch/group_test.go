package main

import (
	"strings"
	"testing"
)

func TestLookupGroup(t *testing.T) {
	if gid, err := lookupGroup("4242"); err != nil || gid != 4242 {
		t.Errorf("4242: %d, %v", gid, err)
	}
	if gid, err := lookupGroup("root"); err != nil || gid != 0 {
		t.Errorf("root: %d, %v", gid, err)
	}
	if _, err := lookupGroup("no-such-group-vx"); err == nil || !strings.Contains(err.Error(), `bad --socket-group "no-such-group-vx": no such group`) {
		t.Errorf("unknown group: %v", err)
	}
}
