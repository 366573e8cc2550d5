//go:build !linux

package replica

import (
	"syscall"
	"time"
)

// userTimeout is a no-op where the platform has no TCP_USER_TIMEOUT: there, a query into a silent
// network is bounded by the proof's deadline and the server's idle_session_timeout alone (New
// says so in its log).
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error { return nil }

// userTimeoutSupported says whether this platform bounds unacknowledged data (TCP_USER_TIMEOUT).
const userTimeoutSupported = false
