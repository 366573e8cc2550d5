package listener

import (
	"fmt"
	"net/http"

	"github.com/imagehook/imagehook/registry"
)

// deliveryHeaders carry a registry's id for one delivery. A redelivery (the registry retrying, or
// someone replaying a captured request) repeats it, so the journal refuses a second event with the
// same hook and delivery id for as long as it keeps events.
var deliveryHeaders = []string{
	"X-GitHub-Delivery", "X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery",
	"X-Nexus-Webhook-Delivery", "Ce-Id", "X-Request-Id-Harbor",
}

// maxDeliveryID bounds what is stored of a caller-chosen id.
const maxDeliveryID = 200

// deliveryIDs fills each push's delivery id: the one its payload gave (a distribution event id, a
// CloudEvents id), else the request's delivery header, numbered when one request carries several
// pushes. Payload ids are signed or token-protected like the rest of the body; the header is not
// covered by a signature, so the replay rule that does not depend on it is the push time (the
// updater ignores a push older than the one already applied).
func deliveryIDs(h http.Header, pushes []registry.Parsed) {
	header := ""
	for _, name := range deliveryHeaders {
		if v := h.Get(name); v != "" {
			header = name + ":" + v
			break
		}
	}
	for i := range pushes {
		p := &pushes[i]
		switch {
		case p.Delivery != "":
		case header == "":
			continue
		case len(pushes) == 1:
			p.Delivery = header
		default:
			p.Delivery = fmt.Sprintf("%s#%d", header, i)
		}
		p.Delivery = truncate(p.Delivery, maxDeliveryID)
	}
}
