package store

import (
	"context"
	"testing"
)

// A network's MAC limit travels in its record; a record written before
// the field existed still reads, with no limit of its own (0: each
// daemon's --max-learned).
func TestNetworkMaxLearned(t *testing.T) {
	_, s := startEtcd(t)
	ctx := context.Background()
	n := testNet("limited")
	n.MaxLearned = 500
	if _, err := s.CreateNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Network(ctx, "limited"); err != nil || got.MaxLearned != 500 {
		t.Errorf("Network(limited) = %+v, %v; want MaxLearned 500", got, err)
	}
	// As vxswitch wrote it before max_learned existed.
	old := `{"name":"old","vni":300,"subnet":"10.9.0.0/24","gateway":"10.9.0.1","mtu":1450,"created":"2026-11-01T10:00:00Z","created_by":"198.18.0.1"}`
	if _, err := s.cli.Put(ctx, pNetworks+"old", old); err != nil {
		t.Fatal(err)
	}
	got, err := s.Network(ctx, "old")
	if err != nil || got.MaxLearned != 0 || got.VNI != 300 || got.MTU != 1450 || got.Subnet.String() != "10.9.0.0/24" {
		t.Errorf("old record read as %+v, %v", got, err)
	}
	v, err := s.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Networks["old"].VNI != 300 || v.Networks["limited"].MaxLearned != 500 {
		t.Errorf("view: %+v", v.Networks)
	}
}
