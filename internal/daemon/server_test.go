package daemon

import (
	"path/filepath"
	"testing"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// The API's default socket is where a daemon with the default run
// directory listens.
func TestDefaultSocket(t *testing.T) {
	if got := filepath.Join(DefaultRunDir, SocketName); got != api.DefaultSocket {
		t.Errorf("the daemon listens at %s by default, api.DefaultSocket is %s", got, api.DefaultSocket)
	}
}
