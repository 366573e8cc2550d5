package chat

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// vendor is one channel's documented contract: how a message is posted and signed, what its
// answer means, and how many messages a minute it takes.
type vendor struct {
	name  string
	body  func(cfg Config, m message, now time.Time) (any, error)
	sign  func(cfg Config, u *url.URL, body []byte, h http.Header, now time.Time)
	check func(resp *http.Response, body []byte) error
	// ratePerMinute is the channel's documented limit (0: none), ratePerMinute's default.
	ratePerMinute int
}

// vendors is the one table of notifier types: a new robot is one entry here.
var vendors = []vendor{
	{name: "dingtalk", body: dingtalkBody, sign: dingtalkSign, check: errcodeCheck("errcode", "errmsg", 130101), ratePerMinute: 20},
	{name: "wecom", body: wecomBody, check: errcodeCheck("errcode", "errmsg", 45009), ratePerMinute: 20},
	{name: "feishu", body: feishuBody, check: feishuCheck},
	{name: "slack", body: slackBody, check: slackCheck},
	{name: "webhook", body: webhookBody, sign: webhookSign, check: statusCheck},
}

// vendorOf returns the table's entry for a notifier type.
func vendorOf(typ string) (vendor, bool) {
	for _, v := range vendors {
		if v.name == typ {
			return v, true
		}
	}
	return vendor{}, false
}

// Types are the notifier types, in the table's order.
func Types() []string {
	out := make([]string, len(vendors))
	for i, v := range vendors {
		out[i] = v.name
	}
	return out
}

// DefaultRatePerMinute is ratePerMinute's default for a type: its channel's documented limit,
// 0 (none) for a channel without one or an unknown type.
func DefaultRatePerMinute(typ string) int {
	v, _ := vendorOf(typ)
	return v.ratePerMinute
}

// request builds the POST for a message.
func (v vendor) request(ctx context.Context, cfg Config, m message, now time.Time) (*http.Request, error) {
	payload, err := v.body(cfg, m, now)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: the notifier's url does not parse", ErrRejected)
	}
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "User-Agent": {"imagehook"}}
	if v.sign != nil && cfg.Secret != "" {
		v.sign(cfg, u, data, h, now)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: the notifier's url is not usable", ErrRejected)
	}
	req.Header = h
	return req, nil
}

// hmacBase64 is base64(HMAC-SHA256(key, msg)).
func hmacBase64(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// DingTalk custom robot: markdown; 加签 adds timestamp (ms) and sign = base64(HMAC-SHA256(secret,
// "timestamp\nsecret")) to the URL; answers HTTP 200 with errcode ≠ 0 on failure (310000: sign not
// match; 130101: sent too fast).
func dingtalkBody(cfg Config, m message, _ time.Time) (any, error) {
	text := strings.Join(m.Lines, "\n\n")
	for _, mob := range cfg.Mention.Mobiles {
		text += " @" + mob // DingTalk mentions a mobile only when the text names it too
	}
	at := map[string]any{"atMobiles": orEmpty(cfg.Mention.Mobiles), "atUserIds": orEmpty(cfg.Mention.UserIDs), "isAtAll": cfg.Mention.All}
	if len(m.Buttons) > 0 {
		// An ActionCard: the text with a button per link (independent jump buttons).
		btns := make([]map[string]string, 0, len(m.Buttons))
		for _, b := range m.Buttons {
			btns = append(btns, map[string]string{"title": b.Text, "actionURL": b.URL})
		}
		return map[string]any{"msgtype": "actionCard", "at": at,
			"actionCard": map[string]any{"title": m.Title, "text": text, "btnOrientation": "1", "btns": btns}}, nil
	}
	return map[string]any{
		"msgtype":  "markdown",
		"markdown": map[string]string{"title": m.Title, "text": text},
		"at":       at,
	}, nil
}

// linkLines are a message's buttons as markdown links, for channels without buttons.
func linkLines(m message) []string {
	var out []string
	for _, b := range m.Buttons {
		out = append(out, "["+b.Text+"]("+b.URL+")")
	}
	return out
}

func dingtalkSign(cfg Config, u *url.URL, _ []byte, _ http.Header, now time.Time) {
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	q := u.Query()
	q.Set("timestamp", ts)
	q.Set("sign", hmacBase64(cfg.Secret, ts+"\n"+cfg.Secret))
	u.RawQuery = q.Encode()
}

// WeCom group robot: markdown, mentions as <@userid> in the content; errcode ≠ 0 on failure
// (45009: over the rate).
func wecomBody(cfg Config, m message, _ time.Time) (any, error) {
	text := strings.Join(append(slices.Clone(m.Lines), linkLines(m)...), "\n")
	for _, id := range cfg.Mention.UserIDs {
		text += "\n<@" + id + ">"
	}
	if cfg.Mention.All {
		text += "\n<@all>"
	}
	return map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": text}}, nil
}

// Feishu (Lark) custom bot: an interactive card; 签名校验 puts timestamp (seconds) and sign =
// base64(HMAC-SHA256 keyed with "timestamp\nsecret" over nothing) in the body; code ≠ 0 on failure
// (19021: sign match fail).
func feishuBody(cfg Config, m message, now time.Time) (any, error) {
	template := "green"
	if m.Failed {
		template = "red"
	}
	text := strings.Join(m.Lines[1:], "\n")
	if cfg.Mention.All {
		text += "\n<at id=all></at>"
	}
	for _, id := range cfg.Mention.UserIDs {
		text += "\n<at id=" + id + "></at>"
	}
	elements := []any{map[string]any{"tag": "markdown", "content": text}}
	if len(m.Buttons) > 0 {
		var actions []any
		for _, b := range m.Buttons {
			actions = append(actions, map[string]any{"tag": "button", "type": "primary", "url": b.URL,
				"text": map[string]string{"tag": "plain_text", "content": b.Text}})
		}
		elements = append(elements, map[string]any{"tag": "action", "actions": actions})
	}
	body := map[string]any{
		"msg_type": "interactive",
		"card": map[string]any{
			"config":   map[string]any{"wide_screen_mode": true},
			"header":   map[string]any{"template": template, "title": map[string]string{"tag": "plain_text", "content": m.Title}},
			"elements": elements,
		},
	}
	if cfg.Secret != "" {
		ts := strconv.FormatInt(now.Unix(), 10)
		body["timestamp"] = ts
		body["sign"] = hmacBase64(ts+"\n"+cfg.Secret, "")
	}
	return body, nil
}

func feishuCheck(resp *http.Response, body []byte) error {
	var r struct {
		Code       *int   `json:"code"`
		Msg        string `json:"msg"`
		StatusCode *int   `json:"StatusCode"`
	}
	if err := statusCheck(resp, body); err != nil {
		return err
	}
	if json.Unmarshal(body, &r) != nil {
		return fmt.Errorf("%w: feishu answered %s", ErrRejected, shortText(body))
	}
	code := 0
	if r.Code != nil {
		code = *r.Code
	} else if r.StatusCode != nil {
		code = *r.StatusCode
	}
	switch {
	case code == 0:
		return nil
	case code == 11232 || code == 9499: // frequency limited
		return fmt.Errorf("%w: feishu code %d: %s", errLimited, code, r.Msg)
	}
	return fmt.Errorf("%w: feishu code %d: %s", ErrRejected, code, shortText([]byte(r.Msg)))
}

// Slack incoming webhook: text with blocks; answers "ok", or a plain-text error with 4xx (429 with
// Retry-After when over the rate).
func slackBody(cfg Config, m message, _ time.Time) (any, error) {
	// Slack's mrkdwn: *bold* and <url|text> links; the lines' markdown links become Slack's.
	lines := make([]string, 0, len(m.Lines))
	for _, l := range append(slices.Clone(m.Lines[1:]), linkLines(m)...) {
		lines = append(lines, slackLinks(l))
	}
	text := strings.Join(lines, "\n")
	if cfg.Mention.All {
		text += "\n<!channel>"
	}
	for _, id := range cfg.Mention.UserIDs {
		text += " <@" + id + ">"
	}
	return map[string]any{
		"text": m.Title,
		"blocks": []any{
			map[string]any{"type": "header", "text": map[string]string{"type": "plain_text", "text": m.Title}},
			map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": text}},
		},
	}, nil
}

// slackLinks rewrites the one markdown link a line may hold, [text](url), as <url|text>.
func slackLinks(l string) string {
	i := strings.Index(l, "](")
	j := strings.LastIndex(l, ")")
	k := strings.LastIndex(l[:max(i, 0)], "[")
	if i < 0 || j < i || k < 0 {
		return l
	}
	return l[:k] + "<" + l[i+2:j] + "|" + l[k+1:i] + ">" + l[j+1:]
}

func slackCheck(resp *http.Response, body []byte) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return statusCheck(resp, body)
}

// The generic webhook: the events as JSON, signed like GitHub's webhooks so that receivers can
// reuse their verification: X-Imagehook-Signature-256: sha256=hex(HMAC-SHA256(secret, body)).
func webhookBody(_ Config, m message, now time.Time) (any, error) {
	body := map[string]any{"title": m.Title, "failed": m.Failed, "sentAt": now.UTC().Format(time.RFC3339), "events": m.Items}
	if len(m.Buttons) > 0 {
		body["lines"], body["links"] = m.Lines[1:], m.Buttons
	}
	return body, nil
}

func webhookSign(cfg Config, _ *url.URL, body []byte, h http.Header, _ time.Time) {
	m := hmac.New(sha256.New, []byte(cfg.Secret))
	m.Write(body)
	h.Set("X-Imagehook-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
}

// statusCheck reads the HTTP status: 2xx accepted, 429 and 5xx transient, other 4xx refused.
func statusCheck(resp *http.Response, body []byte) error {
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("%w: HTTP 429", errLimited)
	case resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, shortText(body))
	}
	return fmt.Errorf("%w: HTTP %d: %s", ErrRejected, resp.StatusCode, shortText(body))
}

// errcodeCheck reads DingTalk's and WeCom's answers: HTTP 200 with a JSON errcode, 0 for success;
// limited is their "too fast" code, worth another try after a pause.
func errcodeCheck(codeKey, msgKey string, limited int) func(*http.Response, []byte) error {
	return func(resp *http.Response, body []byte) error {
		if err := statusCheck(resp, body); err != nil {
			return err
		}
		var r map[string]any
		if json.Unmarshal(body, &r) != nil {
			return fmt.Errorf("%w: answer %s", ErrRejected, shortText(body))
		}
		code, _ := r[codeKey].(float64)
		if code == 0 {
			return nil
		}
		msg := shortText([]byte(fmt.Sprint(r[msgKey])))
		if int(code) == limited {
			return fmt.Errorf("%w: errcode %d: %s", errLimited, int(code), msg)
		}
		return fmt.Errorf("%w: errcode %d: %s", ErrRejected, int(code), msg)
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
