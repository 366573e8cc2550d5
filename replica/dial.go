package replica

import (
	"net"
	"time"
)

// dialer connects to PostgreSQL with the client's half of the silence bounds: keepalive probes
// after two idle seconds, one a second, three unanswered end the connection (an idle socket on a
// network gone silent), and TCP_USER_TIMEOUT ends it when sent data stays unacknowledged for
// silentFor (a query into a network gone silent), where the platform has it.
func dialer() *net.Dialer {
	return &net.Dialer{
		Timeout:         connectWithin,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 2 * time.Second, Interval: time.Second, Count: 3},
		Control:         userTimeout(silentFor),
	}
}
