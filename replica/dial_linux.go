package replica

import (
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// userTimeout sets TCP_USER_TIMEOUT on every socket dialed: data unacknowledged for d ends the
// connection instead of being retransmitted for the kernel's default fifteen minutes. A Unix
// socket (a DSN's host=/run/postgresql) has no such option and needs none.
func userTimeout(d time.Duration) func(network, address string, c syscall.RawConn) error {
	return func(network, _ string, c syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// userTimeoutSupported says whether this platform bounds unacknowledged data (TCP_USER_TIMEOUT).
const userTimeoutSupported = true
