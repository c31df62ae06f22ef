package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

func newNetworkCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Create, list, inspect and remove networks; attach namespaces",
		Example: `  vxswitch network create app --vni 300 --subnet 10.20.0.0/24 --gateway 10.20.0.1
  vxswitch network attach app --netns c1 --ip 10.20.0.2
  vxswitch network ls`}

	var create api.NetworkCreate
	var subnets []string
	createCmd := &cobra.Command{
		Use:   "create NAME --subnet CIDR [--subnet CIDR6] [--vni N] [--gateway IP] [--mtu N] [--egress | --internal] [--max-learned N]",
		Short: "Create a network: a namespace with br0 and a TAP, served by the daemon (with a store: once, for the cluster)",
		Example: `  vxswitch network create app --vni 300 --subnet 10.20.0.0/24 --gateway 10.20.0.1   # by hand: the same on every host
  vxswitch network create web-net --subnet 10.0.0.0/24                               # with a store: once, VNI 256, gateway 10.0.0.1
  vxswitch network create dual --subnet 10.30.0.0/24 --subnet fd00:30::/64 --egress  # dual-stack, with a way out`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			create.Name = args[0]
			if err := splitSubnets(subnets, &create); err != nil {
				return err
			}
			n, err := c.client().CreateNetwork(cmd.Context(), create)
			if err != nil {
				return err
			}
			out := fmt.Sprintf("%s vni %d subnet %s", n.Name, n.VNI, subnetList(n))
			if n.Gateway != "" {
				out += " gateway " + n.Gateway
			}
			if n.Netns != "" {
				out += " netns " + n.Netns
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	createCmd.Flags().Uint32Var(&create.VNI, "vni", 0, "VXLAN network identifier, 1 to 16777215 (default: the lowest free one from 256 up)")
	createCmd.Flags().StringArrayVar(&subnets, "subnet", nil, "IPv4 subnet of the network, e.g. 10.0.0.0/24 (required); again with an IPv6 one, e.g. fd00:1::/64, for a dual-stack network")
	createCmd.Flags().Var(&gatewayFlag{&create.Gateway}, "gateway", "IPv4 address of br0 on every host (ARP for it stays local; with a store it defaults to the subnet's first address, where DNS answers)")
	createCmd.Flags().IntVar(&create.MTU, "mtu", 0, "overlay MTU (default: underlay MTU - 50, or - 70 on an IPv6 underlay)")
	createCmd.Flags().BoolVar(&create.Egress, "egress", false, "give every endpoint a way out: eth1 on the host's egress bridge, masqueraded, with the default route (Docker's docker_gwbridge)")
	createCmd.Flags().BoolVar(&create.Internal, "internal", false, "no way out: endpoints get no default route")
	createCmd.Flags().IntVar(&create.MaxLearned, "max-learned", 0, "learned MAC entries the network holds at most, on every host (default: each daemon's --max-learned)")
	createCmd.MarkFlagRequired("subnet")

	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List networks", Args: cobra.NoArgs,
		Example: "  vxswitch network ls",
		RunE: func(cmd *cobra.Command, _ []string) error {
			nets, err := c.client().Networks(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVNI\tSUBNET\tGATEWAY\tMTU\tSCOPE\tENDPOINTS\tPEERS\tSTATUS")
			stale := ""
			for _, n := range nets {
				status := "up"
				switch {
				case n.Problem != "":
					status = "down: " + n.Problem
				case n.Netns == "":
					status = "no endpoints here"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", n.Name, n.VNI, subnetList(n), orDash(n.Gateway), n.MTU, n.Scope, len(n.Endpoints), len(n.Peers), status)
				if n.Stale != "" {
					stale = n.Stale
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if stale != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "vxswitch: note: "+stale)
			}
			return nil
		},
	}
	inspect := &cobra.Command{
		Use: "inspect NAME", Short: "Show a network as JSON (netns path, TAP, endpoints, peers)", Args: cobra.ExactArgs(1),
		Example: `  vxswitch network inspect app
  nsenter --net="$(vxswitch network inspect app | jq -r .netns)" bridge fdb show br br0`,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := c.client().Network(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), n)
		},
	}
	rm := &cobra.Command{
		Use: "rm NAME", Aliases: []string{"remove"}, Short: "Remove a network without endpoints", Args: cobra.ExactArgs(1),
		Example: "  vxswitch network rm app",
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.client().RemoveNetwork(cmd.Context(), args[0])
		},
	}

	var att api.Attach
	attach := &cobra.Command{
		Use:   "attach NAME --netns NS [--name NAME] [--ip CIDR] [--ip6 CIDR6] [--mac MAC] [--ifname eth0]",
		Short: "Join a network namespace (a container) to a network with a veth on br0",
		Example: `  ip netns add c1 && vxswitch network attach app --netns c1 --ip 10.20.0.2
  vxswitch network attach web-net --netns c1 --name web --alias www                  # with a store: the next free address
  vxswitch network attach app --netns /proc/4242/ns/net --ifname eth1 --mac 02:42:0a:14:00:09`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ep, err := c.client().Attach(cmd.Context(), args[0], att)
			if err != nil {
				return err
			}
			out := ep.IP + " " + ep.MAC
			if ep.IP6 != "" {
				out += " " + ep.IP6 // last, so that `read ip mac` still works
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	attach.Flags().StringVar(&att.Netns, "netns", "", "namespace name (as ip netns lists it) or path (required)")
	attach.Flags().StringVar(&att.IP, "ip", "", "address in the network's subnet (default: the next free one)")
	attach.Flags().StringVar(&att.IP6, "ip6", "", "IPv6 address in a dual-stack network's IPv6 subnet (default: the prefix and the MAC's EUI-64)")
	attach.Flags().StringVar(&att.MAC, "mac", "", "MAC address (default: 02:42 and the IPv4 address)")
	attach.Flags().StringVar(&att.IfName, "ifname", "eth0", "interface name inside the namespace")
	attach.Flags().StringVar(&att.Name, "name", "", "DNS name of the endpoint, NAME and NAME.NETWORK (default: the namespace's name)")
	attach.Flags().StringArrayVar(&att.Aliases, "alias", nil, "another DNS name of the endpoint (repeatable; several endpoints may share one)")
	attach.Flags().StringVar(&att.ID, "id", "", "endpoint ID, unique in the network (default: a random one)")
	attach.MarkFlagRequired("netns")

	var det api.Detach
	detach := &cobra.Command{
		Use: "detach NAME --netns NS | --id ID", Short: "Remove a namespace from a network", Args: cobra.ExactArgs(1),
		Example: `  vxswitch network detach app --netns c1
  vxswitch network detach app --id "$(vxswitch network inspect app | jq -r '.endpoints[0].id')"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (det.Netns == "") == (det.ID == "") {
				return fmt.Errorf("give the endpoint's --netns or its --id (one of them)")
			}
			return c.client().Detach(cmd.Context(), args[0], det)
		},
	}
	detach.Flags().StringVar(&det.Netns, "netns", "", "namespace name or path")
	detach.Flags().StringVar(&det.ID, "id", "", "endpoint ID, as attach or inspect print it")

	cmd.AddCommand(createCmd, ls, inspect, rm, attach, detach)
	return cmd
}

func newPeerCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "peer", Short: "Manage a network's flood list (remote VTEPs)",
		Example: `  vxswitch peer add app 192.0.2.11
  vxswitch peer ls app`}
	cmd.AddCommand(
		&cobra.Command{
			Use: "add NAME VTEP_IP", Short: "Add a remote VTEP to a network's flood list", Args: cobra.ExactArgs(2),
			Example: "  vxswitch peer add app 192.0.2.11",
			RunE: func(cmd *cobra.Command, args []string) error {
				return c.client().AddPeer(cmd.Context(), args[0], args[1])
			},
		},
		&cobra.Command{
			Use: "rm NAME VTEP_IP", Aliases: []string{"del"}, Short: "Remove a remote VTEP from a network's flood list", Args: cobra.ExactArgs(2),
			Example: "  vxswitch peer rm app 192.0.2.11",
			RunE: func(cmd *cobra.Command, args []string) error {
				return c.client().RemovePeer(cmd.Context(), args[0], args[1])
			},
		},
		&cobra.Command{
			Use: "ls NAME", Aliases: []string{"list"}, Short: "List a network's peers", Args: cobra.ExactArgs(1),
			Example: "  vxswitch peer ls app",
			RunE: func(cmd *cobra.Command, args []string) error {
				peers, err := c.client().Peers(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				for _, p := range peers {
					fmt.Fprintln(cmd.OutOrStdout(), p)
				}
				return nil
			},
		},
	)
	return cmd
}

func newFDBCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "fdb", Short: "Show and edit MAC tables",
		Example: `  vxswitch fdb show
  vxswitch fdb add app 02:42:0a:14:00:03 192.0.2.11 --ip 10.20.0.3`}
	var asJSON bool
	show := &cobra.Command{
		Use:   "show [NAME] [--json]",
		Short: "Show MAC table entries, one a line, in the style of `bridge fdb show`",
		Example: `  vxswitch fdb show              # every network
  vxswitch fdb show app --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			entries, err := c.client().FDB(cmd.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), entries)
			}
			for _, e := range entries {
				fmt.Fprintln(cmd.OutOrStdout(), fdbLine(e))
			}
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var ips []string
	add := &cobra.Command{
		Use: "add NAME MAC VTEP_IP [--ip IP]...", Short: "Add (or replace) a static entry: frames to MAC go to VTEP_IP", Args: cobra.ExactArgs(3),
		Example: `  vxswitch fdb add app 02:42:0a:14:00:03 192.0.2.11
  vxswitch fdb add app 02:42:0a:14:00:03 192.0.2.11 --ip 10.20.0.3   # and answer ARP for 10.20.0.3 here`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.client().AddFDB(cmd.Context(), args[0], args[1], args[2], ips...)
		},
	}
	add.Flags().StringArrayVar(&ips, "ip", nil, "an address of the station with MAC: the switch answers ARP or neighbour solicitations for it (repeatable)")
	rm := &cobra.Command{
		Use: "rm NAME MAC", Aliases: []string{"del"}, Short: "Remove a static (or learned) entry", Args: cobra.ExactArgs(2),
		Example: "  vxswitch fdb rm app 02:42:0a:14:00:03",
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.client().RemoveFDB(cmd.Context(), args[0], args[1])
		},
	}
	cmd.AddCommand(show, add, rm)
	return cmd
}

// fdbLine prints an entry as `bridge fdb show` would print it for a kernel
// vxlan device, with the VNI and the entry's source:
//
//	02:42:0a:00:00:03 dst 198.18.0.2 vni 256 learned age 12s
//	02:42:0a:00:00:04 dst 198.18.0.3 vni 256 static
//	00:00:00:00:00:00 dst 198.18.0.2 vni 256 flood
func fdbLine(e api.FDBEntry) string {
	s := fmt.Sprintf("%s dst %s vni %d %s", e.MAC, e.VTEP, e.VNI, e.Source)
	if e.Age != nil {
		s += " age " + (time.Duration(*e.Age) * time.Second).String()
	}
	return s
}

func newInfoCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use: "info", Short: "Show the daemon: version, VTEP, directories, and its link to the cluster store", Args: cobra.NoArgs,
		Example: `  vxswitch info
  vxswitch info | jq -r .store.state`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, err := c.client().Info(cmd.Context())
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), info)
		},
	}
}

func newHostCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "host", Short: "List the cluster's hosts, remove one that will not come back (with a store)",
		Example: `  vxswitch host ls
  vxswitch host rm 198.18.0.3`}
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the hosts of the cluster store with their VTEP and state", Args: cobra.NoArgs,
		Example: "  vxswitch host ls",
		RunE: func(cmd *cobra.Command, _ []string) error {
			hosts, err := c.client().Hosts(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VTEP\tHOSTNAME\tSTATE\tENDPOINTS\tSINCE\tVERSION")
			for _, h := range hosts {
				vtep := h.VTEP
				if h.Self {
					vtep += " *"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", vtep, orDash(h.Hostname), h.State, h.Endpoints, orDash(h.Since), orDash(h.Version))
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use: "rm VTEP", Aliases: []string{"remove"}, Args: cobra.ExactArgs(1),
		Example: "  vxswitch host rm 198.18.0.3   # its lease expired and it will not come back",
		Short:   "Release every endpoint and address of a host that is down and will not come back",
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.client().RemoveHost(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(ls, rm)
	return cmd
}

func newStatsCmd(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use: "stats [NAME] [--json]", Short: "Show traffic counters, drops by reason and MAC table sizes", Args: cobra.MaximumNArgs(1),
		Example: `  vxswitch stats
  vxswitch stats app --json | jq '.networks[0].drops'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			st, err := c.client().Stats(cmd.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			w := cmd.OutOrStdout()
			for _, n := range st.Networks {
				fmt.Fprintf(w, "%s (vni %d)\n", n.Network, n.VNI)
				fmt.Fprintf(w, "  tx: %d frames, %d bytes, %d flooded, %d datagrams\n", n.TXFrames, n.TXBytes, n.TXFlooded, n.TXDatagrams)
				fmt.Fprintf(w, "  rx: %d frames, %d bytes\n", n.RXFrames, n.RXBytes)
				if n.ARPProxied+n.NDProxied > 0 {
					fmt.Fprintf(w, "  proxied: %d ARP requests, %d neighbour solicitations answered here\n", n.ARPProxied, n.NDProxied)
				}
				fmt.Fprintf(w, "  fdb: %d learned (at most %d), %d static, %d store, %d peers; %d moves, %d refused (table full)\n",
					n.FIB.Learned, n.FIB.MaxLearned, n.FIB.Static, n.FIB.Store, n.FIB.Peers, n.FIB.Moved, n.FIB.RefusedFull)
				fmt.Fprintf(w, "  drops: %s\n", drops(n.Drops))
				for _, p := range n.Peers {
					fmt.Fprintf(w, "  peer %s: tx %d datagrams, %d bytes; rx %d frames, %d bytes; drops: %s\n",
						p.VTEP, p.TXDatagrams, p.TXBytes, p.RXFrames, p.RXBytes, drops(p.Drops))
				}
			}
			if name == "" {
				fmt.Fprintf(w, "switch: %d datagrams received, %d lost in the kernel (receive buffer full)\n", st.Switch.RXDatagrams, st.Switch.RXOverflow)
				fmt.Fprintf(w, "switch drops: %s\n", drops(st.Switch.Drops))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func drops(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// subnetList is a network's subnets as create and ls print them: the IPv4
// one, then the IPv6 one, if any, after a comma.
func subnetList(n api.Network) string {
	if n.Subnet6 == "" {
		return n.Subnet
	}
	return n.Subnet + "," + n.Subnet6
}

// splitSubnets puts the --subnet values into req: one IPv4 subnet, and
// optionally one IPv6 subnet (Docker's `--subnet` given twice); the
// daemon checks them.
func splitSubnets(subnets []string, req *api.NetworkCreate) error {
	for _, s := range subnets {
		v6 := strings.Contains(s, ":") // decided by its look, so that a mistyped one is named as such
		switch {
		case v6 && req.Subnet6 != "":
			return fmt.Errorf("two IPv6 --subnet values (%s, %s): give one IPv4 and at most one IPv6 subnet", req.Subnet6, s)
		case v6:
			req.Subnet6 = s
		case req.Subnet != "":
			return fmt.Errorf("two IPv4 --subnet values (%s, %s): give one IPv4 and at most one IPv6 subnet", req.Subnet, s)
		default:
			req.Subnet = s
		}
	}
	if req.Subnet == "" {
		return fmt.Errorf("an IPv4 --subnet is required (IPv6-only networks are not supported; add --subnet 10.x.y.0/24)")
	}
	return nil
}

// gatewayFlag is --gateway: a string flag that refuses a second value,
// where cobra would silently keep the last (a network has one gateway;
// Docker users pass one per subnet, and IPv6 gateways are not supported).
type gatewayFlag struct{ p *string }

func (o *gatewayFlag) String() string {
	if o.p == nil {
		return ""
	}
	return *o.p
}

func (o *gatewayFlag) Set(v string) error {
	if *o.p != "" {
		return fmt.Errorf("given twice (%s, %s): a network has one IPv4 gateway; IPv6 gateways are not supported", *o.p, v)
	}
	*o.p = v
	return nil
}

func (o *gatewayFlag) Type() string { return "IP" }
