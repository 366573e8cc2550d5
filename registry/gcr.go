package registry

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// gcrMessage is what Container Registry and Artifact Registry publish to the "gcr" Pub/Sub topic;
// a push subscription delivers it base64-encoded in message.data.
type gcrMessage struct {
	Action string `json:"action"`
	Digest string `json:"digest"`
	Tag    string `json:"tag"`
}

type pubsubPush struct {
	Message *struct {
		Data        string    `json:"data"`
		PublishTime time.Time `json:"publishTime"`
	} `json:"message"`
}

func parseGCR(r *Request) ([]Parsed, error) {
	var env pubsubPush
	if err := json.Unmarshal(r.Body, &env); err != nil {
		return nil, payloadErr("gcr: %v", err)
	}
	body := r.Body
	var at time.Time
	if env.Message != nil {
		data, err := base64.StdEncoding.DecodeString(env.Message.Data)
		if err != nil {
			return nil, payloadErr("gcr: message.data is not base64")
		}
		body, at = data, env.Message.PublishTime
	}
	var m gcrMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, payloadErr("gcr: message: %v", err)
	}
	switch {
	case m.Action == "DELETE":
		return nil, &Ignored{Reason: "gcr delete"}
	case m.Action != "INSERT":
		return nil, payloadErr("gcr: action %q", truncate(m.Action, 32))
	case m.Tag == "":
		return nil, &Ignored{Reason: "gcr push by digest (no tag)"}
	}
	digest := ""
	if _, d, ok := strings.Cut(m.Digest, "@"); ok {
		digest = d
	}
	image := m.Tag
	if r.RegistryHost != "" {
		_, rest, _ := strings.Cut(image, "/")
		image = withHost(r.RegistryHost, "", rest)
	}
	push, err := makePush("gcr", image, digest, "", at)
	if err != nil {
		return nil, err
	}
	return []Parsed{push}, nil
}
