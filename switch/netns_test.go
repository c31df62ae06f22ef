package vswitch_test

import (
	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/switch/udp"
	"github.com/vxswitch/vxswitch/tap"
)

// Helpers of the netns tests (root): namespaces from internal/testenv,
// sockets and TAPs opened inside them as the daemon opens them.

// listenUDP opens the real underlay in the namespace at ns.
func listenUDP(ns string, cfg udp.Config) (*udp.Underlay, error) {
	var u *udp.Underlay
	err := nsutil.Do(ns, func() (err error) {
		u, err = udp.Listen(cfg)
		return err
	})
	return u, err
}

// createTAP makes a TAP in the namespace at ns.
func createTAP(ns string, opts tap.Options) (tap.Device, error) {
	var d tap.Device
	err := nsutil.Do(ns, func() (err error) {
		d, err = tap.Create(opts)
		return err
	})
	return d, err
}
