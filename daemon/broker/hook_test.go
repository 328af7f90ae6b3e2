package broker

import (
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestLoopbackHook(t *testing.T) {
	h := new(loopbackOnly)
	for remote, want := range map[string]bool{
		"127.0.0.1:5000": true, "[::1]:5000": true, "127.8.9.10:1": true,
		"10.0.0.7:5000": false, "[2001:db8::1]:1": false, "garbage": false, "": false,
	} {
		cl := &mochi.Client{Net: mochi.ClientConnection{Remote: remote}}
		if got := h.OnConnectAuthenticate(cl, packets.Packet{}); got != want {
			t.Errorf("remote %q: allowed=%v, want %v", remote, got, want)
		}
	}
	if !h.Provides(mochi.OnConnectAuthenticate) || !h.Provides(mochi.OnACLCheck) || h.Provides(mochi.OnPublish) {
		t.Error("Provides")
	}
}
