package listener

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/imagehook/imagehook/imageref"
)

// harborPayload is Harbor's "Default" webhook format: 1.x sends type pushImage, 2.x PUSH_ARTIFACT.
type harborPayload struct {
	Type      string `json:"type"`
	OccurAt   int64  `json:"occur_at"`
	Operator  string `json:"operator"`
	EventData struct {
		Resources []struct {
			Digest      string `json:"digest"`
			Tag         string `json:"tag"`
			ResourceURL string `json:"resource_url"`
		} `json:"resources"`
	} `json:"event_data"`
}

// timeZero stands for "the payload gives no time".
var timeZero time.Time

func parseHarbor(r *Request) ([]Parsed, error) {
	var p harborPayload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("harbor: %v", err)
	}
	switch p.Type {
	case "pushImage", "PUSH_ARTIFACT":
	case "":
		return nil, payloadErr("harbor: type is missing")
	default:
		return nil, &Ignored{Reason: "harbor event " + truncate(p.Type, 64) + " is not a push"}
	}
	var at time.Time
	if p.OccurAt > 0 {
		at = time.Unix(p.OccurAt, 0).UTC()
	}
	var out []Parsed
	for _, res := range p.EventData.Resources {
		if res.ResourceURL == "" {
			return nil, payloadErr("harbor: resource_url is missing")
		}
		image := res.ResourceURL
		if ref, err := imageref.Parse(image); err == nil {
			if ref.Tag == "" && res.Tag != "" {
				image = ref.Repo + ":" + res.Tag
			}
			if r.Hook != nil && r.Hook.RegistryHost != "" && strings.Contains(ref.Repo, "/") {
				_, rest, _ := strings.Cut(ref.Repo, "/")
				image = withHost(r.Hook, "", rest) + strings.TrimPrefix(image, ref.Repo)
			}
		}
		if res.Tag == "" && !strings.Contains(image[strings.LastIndex(image, "/")+1:], ":") {
			continue // an untagged artifact (pushed by digest): nothing a manifest names
		}
		push, err := makePush("harbor", image, res.Digest, p.Operator, at)
		if err != nil {
			return nil, err
		}
		out = append(out, push)
	}
	if len(out) == 0 {
		return nil, &Ignored{Reason: "harbor push without a tagged artifact"}
	}
	return out, nil
}
