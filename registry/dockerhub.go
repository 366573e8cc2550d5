package registry

import (
	"encoding/json"
	"time"
)

// dockerHubPayload is Docker Hub's repository webhook body.
type dockerHubPayload struct {
	PushData struct {
		Tag      string `json:"tag"`
		Pusher   string `json:"pusher"`
		PushedAt int64  `json:"pushed_at"`
	} `json:"push_data"`
	Repository struct {
		RepoName string `json:"repo_name"`
	} `json:"repository"`
}

func parseDockerHub(r *Request) ([]Parsed, error) {
	var p dockerHubPayload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("dockerhub: %v", err)
	}
	if p.PushData.Tag == "" {
		return nil, &Ignored{Reason: "docker hub test delivery (no tag)"}
	}
	if p.Repository.RepoName == "" {
		return nil, payloadErr("dockerhub: repository.repo_name is missing")
	}
	// <repo_name>:<tag>; the old tool wrote repo/tag with a slash, which named another image.
	image := withHost(r.RegistryHost, "", p.Repository.RepoName) + ":" + p.PushData.Tag
	var at time.Time
	if p.PushData.PushedAt > 0 {
		at = time.Unix(p.PushData.PushedAt, 0).UTC()
	}
	push, err := makePush("dockerhub", image, "", p.PushData.Pusher, at)
	if err != nil {
		return nil, err
	}
	return []Parsed{push}, nil
}
