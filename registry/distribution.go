package registry

import (
	"encoding/json"
	"strings"
	"time"
)

// distributionEnvelope is the CNCF distribution registry's notification envelope (also sent by
// GitLab's and other registries built on it): several events per request, blobs included.
type distributionEnvelope struct {
	Events []struct {
		ID        string    `json:"id"`
		Action    string    `json:"action"`
		Timestamp time.Time `json:"timestamp"`
		Target    struct {
			MediaType  string `json:"mediaType"`
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
			Digest     string `json:"digest"`
		} `json:"target"`
		Request struct {
			Host string `json:"host"`
		} `json:"request"`
		Actor struct {
			Name string `json:"name"`
		} `json:"actor"`
	} `json:"events"`
}

func parseDistribution(r *Request) ([]Parsed, error) {
	var p distributionEnvelope
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("distribution: %v", err)
	}
	seen := map[string]bool{}
	var out []Parsed
	for _, ev := range p.Events {
		// Only manifest pushes with a tag name something a workload runs; blob uploads and
		// pushes by digest do not.
		if ev.Action != "push" || ev.Target.Tag == "" || !strings.Contains(ev.Target.MediaType, "manifest") && !strings.Contains(ev.Target.MediaType, "image.index") {
			continue
		}
		if ev.Request.Host == "" && (r.RegistryHost == "") {
			return nil, payloadErr("distribution: request.host is missing (set the hook's registryHost)")
		}
		image := withHost(r.RegistryHost, ev.Request.Host, ev.Target.Repository) + ":" + ev.Target.Tag
		if seen[image] {
			continue
		}
		seen[image] = true
		push, err := makePush("distribution", image, ev.Target.Digest, ev.Actor.Name, ev.Timestamp)
		if err != nil {
			return nil, err
		}
		if ev.ID != "" {
			push.Delivery = "distribution:" + ev.ID
		}
		out = append(out, push)
	}
	if len(out) == 0 {
		return nil, &Ignored{Reason: "no tagged manifest push in the notification"}
	}
	return out, nil
}
