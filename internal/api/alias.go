// Package api is the old import path of the control API, which now lives
// in the public package github.com/vxswitch/vxswitch/cmd/vxswitch/api. It
// only re-exports that package (one set of types: every name here is an
// alias), so that code written against this path on branches still in
// flight keeps compiling after they merge. Import cmd/vxswitch/api in new
// code; this package goes once nothing imports it.
package api

import "github.com/vxswitch/vxswitch/cmd/vxswitch/api"

// Routes and the default socket: see cmd/vxswitch/api.
const (
	DefaultSocket = api.DefaultSocket
	PathNetworks  = api.PathNetworks
	PathNetwork   = api.PathNetwork
	PathEndpoints = api.PathEndpoints
	PathPeers     = api.PathPeers
	PathFDB       = api.PathFDB
	PathTrace     = api.PathTrace
	PathAllFDB    = api.PathAllFDB
	PathStats     = api.PathStats
	PathInfo      = api.PathInfo
	PathHosts     = api.PathHosts
	PathHost      = api.PathHost
)

// The control API's types: see cmd/vxswitch/api.
type (
	NetworkCreate  = api.NetworkCreate
	Network        = api.Network
	Attach         = api.Attach
	Endpoint       = api.Endpoint
	Detach         = api.Detach
	Peer           = api.Peer
	FDBEntry       = api.FDBEntry
	Counters       = api.Counters
	SwitchCounters = api.SwitchCounters
	FIBStats       = api.FIBStats
	PeerCounters   = api.PeerCounters
	NetworkStats   = api.NetworkStats
	Stats          = api.Stats
	Info           = api.Info
	StoreInfo      = api.StoreInfo
	Host           = api.Host
	Error          = api.Error
	StatusError    = api.StatusError
	Client         = api.Client
)

// ErrDaemonDown is api.ErrDaemonDown (the same value, for errors.Is).
var ErrDaemonDown = api.ErrDaemonDown

// NewClient is api.NewClient.
func NewClient(socket string) *Client { return api.NewClient(socket) }
