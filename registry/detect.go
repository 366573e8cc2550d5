package registry

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// Detect picks the payload format from the headers and the JSON shape, for hooks with source auto.
func Detect(h http.Header, body []byte) string {
	switch {
	case h.Get("X-GitHub-Event") != "":
		return "ghcr"
	case h.Get("X-Gitea-Event") != "" || h.Get("X-Forgejo-Event") != "":
		return "gitea"
	case h.Get("X-Nexus-Webhook-Signature") != "" || h.Get("X-Nexus-Webhook-Id") != "":
		return "nexus"
	case strings.HasPrefix(h.Get("Content-Type"), "application/vnd.docker.distribution.events"):
		return "distribution"
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return ""
	}
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := top[k]; !ok {
				return false
			}
		}
		return true
	}
	inner := func(key, sub string) bool {
		var m map[string]json.RawMessage
		return json.Unmarshal(top[key], &m) == nil && m[sub] != nil
	}
	switch {
	case has("events"):
		return "distribution"
	case has("message") && inner("message", "data"):
		return "gcr"
	case has("push_data") && inner("repository", "region"):
		return "aliyun"
	case has("push_data") && (has("callback_url") || inner("repository", "repo_name")):
		return "dockerhub"
	case has("push_data"):
		return "custom"
	case has("specversion") || has("event_data"):
		return "harbor"
	case has("updated_tags"):
		return "quay"
	case has("target", "request", "action"):
		return "azure"
	case has("domain", "data") || has("image_name", "event_type"):
		return "jfrog"
	case has("component", "repositoryName"):
		return "nexus"
	case has("package") && bytes.Contains(body, []byte(`"container"`)) && !has("repository") || has("package") && inner("package", "type"):
		return "gitea"
	case has("package") || has("registry_package"):
		return "ghcr"
	}
	return ""
}

// maxDepth bounds JSON nesting: a hostile body of a million brackets costs nothing to refuse.
const maxDepth = 64

func tooDeep(body []byte) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range body {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}
