package replica

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDialerBoundsSilence: the lock connection's socket probes an idle peer after 2 s, once a
// second, three times, and gives up on unacknowledged data after 5 s.
func TestDialerBoundsSilence(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := dialer().Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 2},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 1},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
		{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(silentFor.Milliseconds())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got int
			var gerr error
			if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), tc.level, tc.opt) }); err != nil {
				t.Fatal(err)
			}
			if gerr != nil || got != tc.want {
				t.Errorf("got %d (%v), want %d", got, gerr, tc.want)
			}
		})
	}
}
