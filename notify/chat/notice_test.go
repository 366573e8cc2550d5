package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/imagehook/imagehook/notify"
)

// TestNoticeButtons: a notice's links are buttons where the channel has them — DingTalk's
// ActionCard and Feishu's card actions — and links where it does not (WeCom's markdown, Slack's
// <url|text>, the generic webhook's links), each vendor's receiver checking its documented shape.
func TestNoticeButtons(t *testing.T) {
	nt := notify.Notice{Title: "website: prod waits for approval", Lines: []string{"Candidate: website:2.0.0@sha256:aa"},
		Buttons: []notify.Button{{Text: "Approve as alice", URL: "https://imagehook.example.com/approvals/tok-a"},
			{Text: "Reject as alice", URL: "https://imagehook.example.com/approvals/tok-r"}}}
	ding := &receiver{}
	mux := http.NewServeMux()
	mux.Handle("/robot/send", dingtalk("SECabc", ding))
	var other receiver
	for _, p := range []string{"/feishu", "/wecom", "/slack", "/hook"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			var b map[string]any
			if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
				http.Error(w, "invalid_payload", http.StatusBadRequest)
				return
			}
			b["path"] = p
			other.record(b)
			switch p {
			case "/feishu":
				fmt.Fprint(w, `{"code":0,"data":{},"msg":"success"}`)
			case "/wecom":
				fmt.Fprint(w, `{"errcode":0,"errmsg":"ok"}`)
			default:
				fmt.Fprint(w, "ok")
			}
		})
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()
	if err := newTest(t, Config{Name: "ops", Type: "dingtalk", URL: srv.URL + "/robot/send?access_token=robot-t0ken", Secret: "SECabc", Language: "en"}).Announce(ctx, nt); err != nil {
		t.Fatal(err)
	}
	got := ding.all()
	if len(got) != 1 || got[0]["msgtype"] != "actionCard" {
		t.Fatalf("dingtalk: %v", got)
	}
	btns := got[0]["actionCard"].(map[string]any)["btns"].([]any)
	if len(btns) != 2 || btns[0].(map[string]any)["actionURL"] != nt.Buttons[0].URL || btns[1].(map[string]any)["title"] != "Reject as alice" {
		t.Errorf("dingtalk buttons: %v", btns)
	}
	for _, c := range []struct{ typ, path, want string }{
		{"feishu", "/feishu", `"tag":"button","text":{"content":"Approve as alice","tag":"plain_text"},"type":"primary","url":"https://imagehook.example.com/approvals/tok-a"`},
		{"wecom", "/wecom", "[Approve as alice](https://imagehook.example.com/approvals/tok-a)"},
		{"slack", "/slack", "<https://imagehook.example.com/approvals/tok-r|Reject as alice>"},
		{"webhook", "/hook", `"links":[{"text":"Approve as alice","url":"https://imagehook.example.com/approvals/tok-a"}`},
	} {
		cfg := Config{Name: "ops", Type: c.typ, URL: srv.URL + c.path, Language: "en"}
		if c.typ == "webhook" {
			cfg.Secret = "whsecret"
		}
		if err := newTest(t, cfg).Announce(ctx, nt); err != nil {
			t.Errorf("%s: %v", c.typ, err)
			continue
		}
		var found bool
		for _, b := range other.all() {
			if b["path"] != c.path {
				continue
			}
			var buf strings.Builder
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(b)
			found = strings.Contains(buf.String(), c.want)
			if !found {
				t.Errorf("%s: %s\nwant %s", c.typ, buf.String(), c.want)
			}
		}
		if !found {
			t.Errorf("%s: nothing received", c.typ)
		}
	}
}
