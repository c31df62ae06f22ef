package dnsserver

import "github.com/miekg/dns"

// New makes a Server that answers through Serve without listening.
func New(cfg Config) (*Server, error) { return newServer(cfg) }

// Serve answers r as the listeners would, writing to w.
func (s *Server) Serve(w dns.ResponseWriter, r *dns.Msg) { s.serveDNS(w, r) }

const MaxInflight = maxInflight

var (
	ParseReverse    = parseReverse
	ParseResolvConf = parseResolvConf
)
