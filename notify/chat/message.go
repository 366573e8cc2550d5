package chat

import (
	"fmt"
	"strings"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/lang"
	"github.com/imagehook/imagehook/notify"
)

// message is what one post says: a title, markdown lines, and the facts for the generic webhook.
type message struct {
	Title  string
	Failed bool
	Lines  []string
	Items  []Item
	// Buttons are links shown as the channel shows buttons (a Notice's).
	Buttons []notify.Button
}

// Item is one event as the generic webhook sends it.
type Item struct {
	ID        string         `json:"id"`
	Hook      string         `json:"hook"`
	Status    string         `json:"status"`
	Image     string         `json:"image"`
	Pusher    string         `json:"pusher,omitempty"`
	Source    string         `json:"source"`
	Commit    string         `json:"commit,omitempty"`
	CommitURL string         `json:"commitURL,omitempty"`
	Changes   []event.Change `json:"changes,omitempty"`
	Deploy    string         `json:"deploy,omitempty"`
	Error     string         `json:"error,omitempty"`
	// Durations from the webhook's arrival, in seconds: to the push, the sync and the rollout.
	PushedAfter float64 `json:"pushedAfterSeconds,omitempty"`
	SyncedAfter float64 `json:"syncedAfterSeconds,omitempty"`
	ReadyAfter  float64 `json:"readyAfterSeconds,omitempty"`
}

// words are the reports' words, by language.
var words = lang.Words{
	"zh": {"ok": "镜像更新成功", "fail": "镜像更新失败", "hook": "钩子", "workload": "工作负载", "container": "容器", "image": "镜像",
		"pusher": "推送者", "commit": "提交", "deploy": "部署", "timeline": "耗时", "webhook": "收到 webhook", "pushed": "推送",
		"synced": "同步", "ready": "就绪", "error": "原因", "also": "同一提交还包括", "many": "条更新", "test": "imagehook 测试通知"},
	"en": {"ok": "Image updated", "fail": "Image update failed", "hook": "Hook", "workload": "Workload", "container": "container", "image": "Image",
		"pusher": "Pusher", "commit": "Commit", "deploy": "Deploy", "timeline": "Timeline", "webhook": "webhook", "pushed": "pushed",
		"synced": "synced", "ready": "ready", "error": "Why", "also": "The same commit also carried", "many": "updates", "test": "imagehook test notification"},
}

// safe makes an untrusted value (from a payload or the manifests) inert in every channel's
// markdown: one line, no code-span breakout, no links, mentions or HTML (<@user>, <!channel>,
// [text](url)).
func safe(s string) string {
	s = event.OneLine(s)
	r := strings.NewReplacer("`", "'", "<", "‹", ">", "›", "[", "⟦", "]", "⟧", "@", "＠")
	s = r.Replace(s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// compose writes the report of ev (and the events its commit also carried).
func compose(language string, ev *event.Event, others []*event.Event, failed bool) message {
	w := words.In(language)
	m := message{Failed: failed, Title: w["ok"]}
	icon := "✅"
	if failed {
		m.Title, icon = w["fail"], "❌"
	}
	item := itemOf(ev)
	m.Items = append(m.Items, item)
	m.Lines = append(m.Lines, fmt.Sprintf("### %s %s", icon, m.Title),
		fmt.Sprintf("- %s: `%s`", w["hook"], safe(ev.Hook)))
	for _, c := range item.Changes {
		if !c.Changed() {
			continue
		}
		m.Lines = append(m.Lines, fmt.Sprintf("- %s: `%s` %s `%s`", w["workload"], safe(c.Workload), w["container"], safe(c.Container)),
			fmt.Sprintf("- %s: `%s` → `%s`", w["image"], safe(c.Old), safe(c.New)))
	}
	if len(item.Changes) == 0 {
		m.Lines = append(m.Lines, fmt.Sprintf("- %s: `%s`", w["image"], safe(ev.Push.Ref())))
	}
	if ev.Push.Pusher != "" {
		m.Lines = append(m.Lines, fmt.Sprintf("- %s: `%s`", w["pusher"], safe(ev.Push.Pusher)))
	}
	if item.Commit != "" {
		short := item.Commit
		if len(short) > 12 {
			short = short[:12]
		}
		if item.CommitURL != "" {
			m.Lines = append(m.Lines, fmt.Sprintf("- %s: [%s](%s)", w["commit"], safe(short), item.CommitURL))
		} else {
			m.Lines = append(m.Lines, fmt.Sprintf("- %s: `%s`", w["commit"], safe(short)))
		}
	}
	if item.Deploy != "" {
		m.Lines = append(m.Lines, fmt.Sprintf("- %s: %s", w["deploy"], safe(item.Deploy)))
	}
	if t := timeline(w, item); t != "" {
		m.Lines = append(m.Lines, fmt.Sprintf("- %s: %s", w["timeline"], t))
	}
	if item.Error != "" {
		m.Lines = append(m.Lines, fmt.Sprintf("- %s: `%s`", w["error"], safe(item.Error)))
	}
	if len(others) > 0 {
		ids := make([]string, 0, len(others))
		for _, o := range others {
			ids = append(ids, "`"+safe(o.ID)+"`")
			m.Items = append(m.Items, itemOf(o))
		}
		m.Lines = append(m.Lines, fmt.Sprintf("- %s: %s", w["also"], strings.Join(ids, ", ")))
	}
	return m
}

// merge makes one message of several (reports held back by the rate limit).
func merge(language string, msgs []message) message {
	if len(msgs) == 1 {
		return msgs[0]
	}
	w := words.In(language)
	out := message{Title: fmt.Sprintf("imagehook: %d %s", len(msgs), w["many"])}
	for _, m := range msgs {
		out.Failed = out.Failed || m.Failed
		out.Items = append(out.Items, m.Items...)
		out.Lines = append(out.Lines, m.Lines...)
		out.Lines = append(out.Lines, "")
		out.Buttons = append(out.Buttons, m.Buttons...)
	}
	return out
}

func itemOf(ev *event.Event) Item {
	it := Item{ID: ev.ID, Hook: event.OneLine(ev.Hook), Status: string(ev.Status), Image: event.OneLine(ev.Push.Ref()),
		Pusher: event.OneLine(ev.Push.Pusher), Source: event.OneLine(ev.Push.Source), Error: event.OneLine(ev.Error)}
	since := func(t time.Time) float64 {
		if t.IsZero() || ev.ReceivedAt.IsZero() {
			return 0
		}
		return t.Sub(ev.ReceivedAt).Round(time.Millisecond).Seconds()
	}
	for _, s := range ev.Steps {
		switch s.Name {
		case event.StepGit:
			it.Commit, it.CommitURL = event.OneLine(s.Commit), s.URL
			if s.Status == event.Succeeded && s.Commit != "" {
				it.PushedAfter = since(s.At)
			}
			for _, c := range s.Changes {
				it.Changes = append(it.Changes, c)
			}
		case event.StepApply:
			for _, c := range s.Changes {
				it.Changes = append(it.Changes, c)
			}
		case event.StepDeploy:
			it.Deploy = string(s.Status)
			if s.Detail != "" {
				it.Deploy += " — " + event.OneLine(s.Detail)
			}
			it.SyncedAfter, it.ReadyAfter = since(s.SyncedAt), since(s.ReadyAt)
		}
		if s.Status == event.Failed && it.Error == "" {
			it.Error = event.OneLine(s.Name + ": " + s.Error)
		}
	}
	// A link must be the repository's own web URL (config), never something a payload supplied.
	if !strings.HasPrefix(it.CommitURL, "https://") && !strings.HasPrefix(it.CommitURL, "http://") {
		it.CommitURL = ""
	}
	return it
}

func timeline(w map[string]string, it Item) string {
	if it.PushedAfter == 0 {
		return ""
	}
	s := fmt.Sprintf("%s → %s %s", w["webhook"], w["pushed"], secs(it.PushedAfter))
	if it.SyncedAfter > 0 {
		s += fmt.Sprintf(" → %s %s", w["synced"], secs(it.SyncedAfter))
	}
	if it.ReadyAfter > 0 {
		s += fmt.Sprintf(" → %s %s", w["ready"], secs(it.ReadyAfter))
	}
	return s
}

func secs(f float64) string {
	return (time.Duration(f * float64(time.Second))).Round(100 * time.Millisecond).String()
}

// Test is the sample message of send-test-notification.
func Test(language string) message {
	w := words.In(language)
	return message{Title: w["test"], Lines: []string{"### " + w["test"], "- " + time.Now().UTC().Format(time.RFC3339)}}
}
