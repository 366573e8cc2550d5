package event

import (
	"crypto/sha256"
	"strings"
)

// SourcePromotion is the Push.Source of a promotion event: the image came from a stage before, not
// from a registry's webhook.
const SourcePromotion = "promotion"

// ReasonHeld: the target's pipeline stage is held (a person changed its value in git, or held it
// through the API) and sets hold: strict, so a hook's push is not applied to it until it is
// released.
const ReasonHeld Reason = "held"

// PromotedFrom says where a promotion came from: the event that brought the image to Stage of
// Pipeline, and who approved it into Into.
type PromotedFrom struct {
	Pipeline   string   `json:"pipeline"`
	Stage      string   `json:"stage"`
	Event      string   `json:"event"`
	Into       string   `json:"into"`
	ApprovedBy []string `json:"approvedBy,omitempty"`
}

// DerivedID returns an event id that is a function of parts: two replicas that decide the same
// promotion journal it under one id (and one delivery), so it is recorded once.
func DerivedID(parts ...string) string {
	sum := sha256.Sum256([]byte(JoinKey(parts...)))
	return strings.ToLower(idEncoding.EncodeToString(sum[:16]))
}
