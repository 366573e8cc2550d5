package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestChatNotifiers: a hook's notifiers hear about its events (DingTalk's signed robot here); a
// robot that refuses (wrong 加签 secret) fails the notify step, never the update, and the robot's
// token is nowhere in what imagehook records or logs.
func TestChatNotifiers(t *testing.T) {
	var mu sync.Mutex
	var texts []string
	robot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Markdown struct{ Text string } `json:"markdown"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		m := hmac.New(sha256.New, []byte("SECgood"))
		m.Write([]byte(r.URL.Query().Get("timestamp") + "\nSECgood"))
		if r.URL.Query().Get("sign") != base64.StdEncoding.EncodeToString(m.Sum(nil)) {
			fmt.Fprint(w, `{"errcode":310000,"errmsg":"sign not match"}`)
			return
		}
		mu.Lock()
		texts = append(texts, b.Markdown.Text)
		mu.Unlock()
		fmt.Fprint(w, `{"errcode":0,"errmsg":"ok"}`)
	}))
	defer robot.Close()
	const token = "dingtalk-robot-t0ken-do-not-log"
	hooks := `  - id: chatty
    token: ${HOOK_TOKEN}
    source: dockerhub
    notify: [ops, misconfigured]
    targets: [{repo: apps, path: apps/website, workload: deployment/website, namespace: web, container: website}]
`
	h := newHarnessHooks(t, hooks, fmt.Sprintf(`notifiers:
  - {name: ops, type: dingtalk, url: "%[1]s/robot/send?access_token=%[2]s", secret: SECgood, language: en}
  - {name: misconfigured, type: dingtalk, url: "%[1]s/robot/send?access_token=%[2]s", secret: SECbad}`, robot.URL, token))
	code, ev := h.post("/hooks/chatty?wait=30s&token="+hookToken, []byte(`{"push_data":{"tag":"4.0.0","pusher":"ci"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if code != 200 || ev["status"] != "succeeded" {
		t.Fatalf("%d %v", code, ev)
	}
	mu.Lock()
	got := append([]string(nil), texts...)
	mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], "website:4.0.0") || !strings.Contains(got[0], "Image updated") {
		t.Errorf("robot got %q", got)
	}
	st := step(ev, "notify")
	if st["status"] != "failed" || !strings.Contains(fmt.Sprint(st["error"]), "notifier misconfigured") || !strings.Contains(fmt.Sprint(st["error"]), "310000") {
		t.Errorf("notify step %v", st)
	}
	data, _ := json.Marshal(ev)
	if strings.Contains(string(data), token) || strings.Contains(h.logs.String(), token) || strings.Contains(string(data), "SECbad") {
		t.Error("the robot's token or secret leaks")
	}
}
