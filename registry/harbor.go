package registry

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/imagehook/imagehook/imageref"
)

// harborPayload is Harbor's "Default" webhook format (1.x sends type pushImage, 2.x PUSH_ARTIFACT)
// and its 2.x "CloudEvents" format (type harbor.artifact.pushed, the same resources under data).
// Tencent TCR sends the 1.x shape.
type harborPayload struct {
	SpecVersion string     `json:"specversion"`
	ID          string     `json:"id"`
	Type        string     `json:"type"`
	Time        time.Time  `json:"time"`
	OccurAt     int64      `json:"occur_at"`
	Operator    string     `json:"operator"`
	EventData   harborData `json:"event_data"`
	Data        harborData `json:"data"`
}

type harborData struct {
	Resources []struct {
		Digest      string `json:"digest"`
		Tag         string `json:"tag"`
		ResourceURL string `json:"resource_url"`
	} `json:"resources"`
}

// timeZero stands for "the payload gives no time".
var timeZero time.Time

func parseHarbor(r *Request) ([]Parsed, error) { return harborLike("harbor", r) }

func parseTCR(r *Request) ([]Parsed, error) { return harborLike("tcr", r) }

func harborLike(source string, r *Request) ([]Parsed, error) {
	var p harborPayload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("%s: %v", source, err)
	}
	data, at := p.EventData, p.Time
	if p.SpecVersion != "" {
		data = p.Data
	}
	switch p.Type {
	case "pushImage", "PUSH_ARTIFACT", "harbor.artifact.pushed":
	case "":
		return nil, payloadErr("%s: type is missing", source)
	default:
		return nil, &Ignored{Reason: source + " event " + truncate(p.Type, 64) + " is not a push"}
	}
	if p.OccurAt > 0 {
		at = time.Unix(p.OccurAt, 0).UTC()
	}
	var out []Parsed
	for _, res := range data.Resources {
		if res.ResourceURL == "" {
			return nil, payloadErr("%s: resource_url is missing", source)
		}
		image := res.ResourceURL
		if ref, err := imageref.Parse(image); err == nil {
			if ref.Tag == "" && res.Tag != "" {
				image = ref.Repo + ":" + res.Tag
			}
			if r.RegistryHost != "" && strings.Contains(ref.Repo, "/") {
				_, rest, _ := strings.Cut(ref.Repo, "/")
				image = withHost(r.RegistryHost, "", rest) + strings.TrimPrefix(image, ref.Repo)
			}
		}
		if res.Tag == "" && !strings.Contains(image[strings.LastIndex(image, "/")+1:], ":") {
			continue // an untagged artifact (pushed by digest): nothing a manifest names
		}
		push, err := makePush(source, image, res.Digest, p.Operator, at)
		if err != nil {
			return nil, err
		}
		if p.SpecVersion != "" && p.ID != "" {
			push.Delivery = fmt.Sprintf("cloudevents:%s#%d", p.ID, len(out))
		}
		out = append(out, push)
	}
	if len(out) == 0 {
		return nil, &Ignored{Reason: source + " push without a tagged artifact"}
	}
	return out, nil
}
