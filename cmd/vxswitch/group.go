package main

import (
	"fmt"
	"os/user"
	"strconv"
)

// lookupGroup reads --socket-group: a group name from the group database,
// or a numeric GID (which need not be listed there); "" is none (0).
func lookupGroup(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	if gid, err := strconv.ParseUint(s, 10, 31); err == nil {
		return int(gid), nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, fmt.Errorf("bad --socket-group %q: no such group (make it with `groupadd %s`, or give a numeric GID)", s, s)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("bad --socket-group %q: GID %q is not a number", s, g.Gid)
	}
	return gid, nil
}
