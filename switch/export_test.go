package vswitch

// SetGSO turns UDP GSO on or off on a Linux underlay, for tests of the
// path that sends GSO messages as single datagrams.
func SetGSO(ul Underlay, on bool) { ul.(*udpUnderlay).gso.Store(on) }

// GSO reports whether a Linux underlay sends with UDP_SEGMENT.
func GSO(ul Underlay) bool { return ul.(*udpUnderlay).gso.Load() }
