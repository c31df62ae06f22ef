package api_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// A program doing what `vxswitch network create web-net --subnet
// 10.0.0.0/24 --subnet fd00:1::/64` and `vxswitch network attach web-net
// --netns c1 --name web` do, against the daemon at the default socket
// (compiled, not run: it needs a running daemon).
func Example() {
	c := api.NewClient(api.DefaultSocket)
	ctx := context.Background()
	n, err := c.CreateNetwork(ctx, api.NetworkCreate{Name: "web-net", Subnet: "10.0.0.0/24", Subnet6: "fd00:1::/64"})
	var se *api.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusConflict:
		// Made already (by another host, with a store): use it.
		if n, err = c.Network(ctx, "web-net"); err != nil {
			log.Fatal(err)
		}
	case err != nil:
		log.Fatal(err) // one line, e.g. "vxswitch daemon not running at ..."
	}
	ep, err := c.Attach(ctx, n.Name, api.Attach{Netns: "c1", Name: "web"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ep.IP, ep.IP6, ep.MAC) // 10.0.0.2/24 fd00:1::42:aff:fe00:2/64 02:42:0a:00:00:02
}
