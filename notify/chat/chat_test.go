package chat

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/imagehook/imagehook/event"
)

// receiver plays one vendor's documented robot: it checks the signature and the payload shape the
// vendor documents and answers the way the vendor does.
type receiver struct {
	mu     sync.Mutex
	bodies []map[string]any
	// answer returns the status and body for a request that passed the checks, by its number.
	answer func(n int) (int, string)
	// hold delays the answer to the first request (to let reports pile up).
	hold time.Duration
}

func (rc *receiver) record(body map[string]any) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.bodies = append(rc.bodies, body)
	return len(rc.bodies)
}

func (rc *receiver) all() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.bodies...)
}

func hmacB64(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// dingtalk: "timestamp" and "sign" query parameters, sign = base64(HMAC-SHA256(secret,
// timestamp+"\n"+secret)), within an hour; errors are HTTP 200 with errcode.
func dingtalk(secret string, rc *receiver) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		ts, _ := strconv.ParseInt(r.URL.Query().Get("timestamp"), 10, 64)
		if r.URL.Query().Get("access_token") != "robot-t0ken" || time.Since(time.UnixMilli(ts)).Abs() > time.Hour ||
			r.URL.Query().Get("sign") != hmacB64(secret, r.URL.Query().Get("timestamp")+"\n"+secret) {
			fmt.Fprint(w, `{"errcode":310000,"errmsg":"sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"}`)
			return
		}
		if !dingtalkShape(body) {
			fmt.Fprint(w, `{"errcode":40035,"errmsg":"缺少参数 json"}`)
			return
		}
		n := rc.record(body)
		if n == 1 && rc.hold > 0 {
			time.Sleep(rc.hold)
		}
		code, text := 200, `{"errcode":0,"errmsg":"ok"}`
		if rc.answer != nil {
			code, text = rc.answer(n)
		}
		w.WriteHeader(code)
		fmt.Fprint(w, text)
	}
}

// dingtalkShape checks a message as DingTalk documents its custom robot's types: markdown with a
// title and text, or an ActionCard with a title, text and buttons each with a title and actionURL.
func dingtalkShape(body map[string]any) bool {
	switch body["msgtype"] {
	case "markdown":
		md, _ := body["markdown"].(map[string]any)
		return md["title"] != nil && md["text"] != nil
	case "actionCard":
		card, _ := body["actionCard"].(map[string]any)
		btns, _ := card["btns"].([]any)
		if card["title"] == nil || card["text"] == nil || len(btns) == 0 {
			return false
		}
		for _, b := range btns {
			if m, _ := b.(map[string]any); m["title"] == nil || m["actionURL"] == nil {
				return false
			}
		}
		return true
	}
	return false
}

func newTest(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	cfg.retryFirst, cfg.retryMax = 10*time.Millisecond, 50*time.Millisecond
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func finished(id string, failed bool) *event.Event {
	now := time.Now()
	ev := &event.Event{ID: id, Hook: "website", Notify: []string{"ops"}, ReceivedAt: now.Add(-3 * time.Second), Status: event.Succeeded,
		Push: event.Push{Image: "registry.example.com/team/website:2.0.0", Pusher: "ci [bot](javascript:alert(1)) <!channel> `x`", Source: "aliyun"}}
	st := event.Step{Name: event.StepGit, Status: event.Succeeded, Commit: "0123456789abcdef", URL: "https://git.example.com/apps/commit/0123456789abcdef", At: now.Add(-2 * time.Second),
		Changes: []event.Change{{File: "web.yaml", Workload: "deployment/website", Container: "website", Old: "website:1.0.0", New: "website:2.0.0"}}}
	if failed {
		ev.Status, ev.Error = event.Failed, "git: push rejected: protected branch"
		st.Status, st.Error = event.Failed, "push rejected: protected branch"
	}
	ev.Steps = []event.Step{st, {Name: event.StepDeploy, Status: event.Succeeded, Detail: "argocd/website synced", SyncedAt: now.Add(-time.Second), ReadyAt: now}}
	return ev
}

func TestDingTalk(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(dingtalk("SECabc", rc))
	defer srv.Close()
	url := srv.URL + "/robot/send?access_token=robot-t0ken"
	n := newTest(t, Config{Name: "ops", Type: "dingtalk", URL: url, Secret: "SECabc", Language: "zh", Mention: Mention{Mobiles: []string{"13800000000"}}})
	if err := n.Notify(context.Background(), finished("e1", false)); err != nil {
		t.Fatal(err)
	}
	got := rc.all()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	md := got[0]["markdown"].(map[string]any)
	text := md["text"].(string)
	for _, want := range []string{"镜像更新成功", "`website:1.0.0` → `website:2.0.0`", "[0123456789ab](https://git.example.com/apps/commit/0123456789abcdef)",
		"收到 webhook → 推送 1s → 同步 2s → 就绪 3s", "@13800000000"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	// The pusher came from a payload: no link, no mention, no code-span breakout.
	if strings.Contains(text, "](javascript") || strings.Contains(text, "<!channel>") || strings.Contains(text, "`x`") {
		t.Errorf("an untrusted value renders as markup:\n%s", text)
	}
	if at := got[0]["at"].(map[string]any); at["atMobiles"].([]any)[0] != "13800000000" {
		t.Errorf("at = %v", at)
	}
	// Another event's report is not for this notifier; a wrong secret is DingTalk's errcode 310000,
	// reported, not retried, and the error never holds the robot's token.
	other := finished("e2", false)
	other.Notify = []string{"dev"}
	if err := n.Notify(context.Background(), other); err != nil || len(rc.all()) != 1 {
		t.Errorf("a report for another notifier was sent: %v", err)
	}
	bad := newTest(t, Config{Name: "ops", Type: "dingtalk", URL: url, Secret: "SECwrong", Language: "en"})
	err := bad.Notify(context.Background(), finished("e3", true))
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "errcode 310000") || strings.Contains(err.Error(), "robot-t0ken") {
		t.Errorf("err = %v", err)
	}
}

// TestCoalescing: past the robot's rate, reports are carried together by the next message, not
// dropped; DingTalk's "too fast" (130101) is tried again.
func TestCoalescing(t *testing.T) {
	rc := &receiver{hold: 200 * time.Millisecond, answer: func(n int) (int, string) {
		if n == 2 {
			return 200, `{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}`
		}
		return 200, `{"errcode":0,"errmsg":"ok"}`
	}}
	srv := httptest.NewServer(dingtalk("s", rc))
	defer srv.Close()
	n := newTest(t, Config{Name: "ops", Type: "dingtalk", URL: srv.URL + "/robot/send?access_token=robot-t0ken", Secret: "s", Language: "en"})
	n.limiter = rate.NewLimiter(rate.Every(300*time.Millisecond), 1)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			errs[i] = n.Notify(context.Background(), finished(fmt.Sprintf("ev-%d", i), false))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got := rc.all()
	var all strings.Builder
	for _, b := range got {
		all.WriteString(b["markdown"].(map[string]any)["text"].(string))
	}
	// One message alone, one refused as too fast and sent again, carrying the five others.
	if len(got) != 3 {
		t.Errorf("%d posts, want 3", len(got))
	}
	if c := strings.Count(all.String(), "✅"); c != 6+5 { // the refused post's five, then the same five again
		t.Errorf("%d reports in all posts, want 11", c)
	}
	if c := strings.Count(got[len(got)-1]["markdown"].(map[string]any)["text"].(string), "✅"); c != 5 {
		t.Errorf("the coalesced message carries %d reports, want 5", c)
	}
}

func TestFeishuWeComSlackWebhook(t *testing.T) {
	var feishu, wecom, slack, hook receiver
	wecomCalls := 0
	mux := http.NewServeMux()
	mux.HandleFunc("/feishu", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		ts, _ := b["timestamp"].(string)
		if b["sign"] != hmacB64(ts+"\n"+"fsecret", "") {
			fmt.Fprint(w, `{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}`)
			return
		}
		if b["msg_type"] != "interactive" {
			fmt.Fprint(w, `{"code":9499,"msg":"Bad Request"}`)
			return
		}
		feishu.record(b)
		fmt.Fprint(w, `{"code":0,"data":{},"msg":"success"}`)
	})
	mux.HandleFunc("/wecom", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		wecomCalls++
		if wecomCalls == 1 {
			fmt.Fprint(w, `{"errcode":45009,"errmsg":"api freq out of limit"}`)
			return
		}
		wecom.record(b)
		fmt.Fprint(w, `{"errcode":0,"errmsg":"ok"}`)
	})
	mux.HandleFunc("/slack", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		if json.NewDecoder(r.Body).Decode(&b) != nil || b["text"] == nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		slack.record(b)
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte("whsecret"))
		m.Write(data)
		if r.Header.Get("X-Imagehook-Signature-256") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var b map[string]any
		_ = json.Unmarshal(data, &b)
		hook.record(b)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()
	for _, c := range []struct {
		cfg  Config
		rc   *receiver
		want string
	}{
		{Config{Type: "feishu", URL: srv.URL + "/feishu", Secret: "fsecret", Language: "en", Mention: Mention{All: true}}, &feishu, `"template":"red"`},
		{Config{Type: "wecom", URL: srv.URL + "/wecom", Language: "zh", Mention: Mention{UserIDs: []string{"zhangsan"}}}, &wecom, `<@zhangsan>`},
		{Config{Type: "slack", URL: srv.URL + "/slack", Language: "en"}, &slack, `<https://git.example.com/apps/commit/0123456789abcdef|0123456789ab>`},
		{Config{Type: "webhook", URL: srv.URL + "/hook", Secret: "whsecret", Language: "en"}, &hook, `"readyAfterSeconds":3`},
	} {
		c.cfg.Name = "ops"
		if err := newTest(t, c.cfg).Notify(ctx, finished("e1", true)); err != nil {
			t.Errorf("%s: %v", c.cfg.Type, err)
			continue
		}
		got := c.rc.all()
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(got)
		data := buf.String()
		if len(got) != 1 || !strings.Contains(data, c.want) {
			t.Errorf("%s: %s, want %s", c.cfg.Type, data, c.want)
		}
	}
	// Refusals: Feishu's code 19021 (wrong secret), Slack's plain-text 400 — not retried.
	for _, cfg := range []Config{
		{Name: "ops", Type: "feishu", URL: srv.URL + "/feishu", Secret: "wrong", Language: "en"},
		{Name: "ops", Type: "webhook", URL: srv.URL + "/hook", Secret: "wrong", Language: "en"},
	} {
		if err := newTest(t, cfg).Notify(ctx, finished("e2", false)); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: err = %v", cfg.Type, err)
		}
	}
}

// TestRedirectToAnotherHostIsRefused (trust row 2): a robot endpoint answering 307 to another host
// gets the report refused there — the body, its signature and the robot's URL (its token) never
// reach that host, as a Referer or otherwise — and the error does not hold the token.
func TestRedirectToAnotherHostIsRefused(t *testing.T) {
	var stolen []string
	var mu sync.Mutex
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stolen = append(stolen, r.URL.String()+" "+r.Header.Get("Referer"))
		mu.Unlock()
	}))
	defer thief.Close()
	robot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, thief.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	defer robot.Close()
	n := newTest(t, Config{Name: "ops", Type: "dingtalk", URL: robot.URL + "/robot/send?access_token=robot-t0ken", Secret: "SECabc", Language: "en"})
	err := n.Notify(context.Background(), finished("e1", false))
	mu.Lock()
	defer mu.Unlock()
	if err == nil || len(stolen) != 0 || strings.Contains(err.Error(), "robot-t0ken") {
		t.Errorf("err = %v; requests that reached the other host: %v", err, stolen)
	}
}
