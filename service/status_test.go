package service

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// cells returns the text of every cell of the table with that id, row by row.
func cells(t *testing.T, doc *html.Node, id string) [][]string {
	t.Helper()
	var table *html.Node
	var find func(n *html.Node)
	find = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "table" {
			for _, a := range n.Attr {
				if a.Key == "id" && a.Val == id {
					table = n
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if table == nil {
		t.Fatalf("no table #%s", id)
	}
	var rows [][]string
	var text func(n *html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" {
			var row []string
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
					row = append(row, strings.TrimSpace(text(c)))
				}
			}
			rows = append(rows, row)
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(table)
	return rows
}

func getPage(t *testing.T, url string, header ...string) (int, *html.Node) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	doc, err := html.Parse(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, doc
}

func TestStatusPage(t *testing.T) {
	h := newHarness(t, "admin: {token: admin-t0ken}")
	code, resp := h.post("/hooks/dockerhub?wait=30s&token="+hookToken, []byte(`{"push_data":{"tag":"6.0.0","pusher":"<script>x</script>"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if code != 200 {
		t.Fatalf("%d %v", code, resp)
	}
	id := resp["id"].(string)
	if code, _ := getPage(t, "http://"+h.addr+"/"); code != http.StatusUnauthorized {
		t.Errorf("status page without the admin token: %d", code)
	}
	code, doc := getPage(t, "http://"+h.addr+"/", "Authorization", "Bearer admin-t0ken")
	if code != 200 {
		t.Fatalf("status page: %d", code)
	}
	if open := byID(doc, "open"); open != nil {
		t.Error("with admin: set, the status page says it is open")
	}
	rows := cells(t, doc, "events")
	if len(rows) != 2 || rows[1][1] != "dockerhub" || rows[1][3] != "succeeded" || !strings.Contains(rows[1][2], "imagehook-demo/website:6.0.0") || len(rows[1][4]) != 10 {
		t.Errorf("events table = %q", rows)
	}
	code, doc = getPage(t, "http://"+h.addr+"/ui/events/"+id, "Authorization", "Bearer admin-t0ken")
	if code != 200 {
		t.Fatalf("event page: %d", code)
	}
	event := cells(t, doc, "event")
	if event[0][1] != id || !strings.Contains(event[3][1], "<script>x</script>") {
		t.Errorf("event table = %q", event)
	}
	steps := cells(t, doc, "steps")
	if len(steps) != 3 || !strings.HasPrefix(steps[1][0], "git") || !strings.Contains(steps[1][3], "website:6.0.0") {
		t.Errorf("steps table = %q", steps)
	}
	if code, _ := getPage(t, "http://"+h.addr+"/ui/events/nope", "Authorization", "Bearer admin-t0ken"); code != 404 {
		t.Errorf("unknown event page: %d", code)
	}
	// The metrics carry the flow's counters, for the admin only (metrics.public is not set).
	if code, _ := getPage(t, "http://"+h.addr+"/metrics"); code != http.StatusUnauthorized {
		t.Errorf("metrics without credentials: %d, want 401", code)
	}
	mreq, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/metrics", nil)
	mreq.Header.Set("Authorization", "Bearer admin-t0ken")
	mresp, err := http.DefaultClient.Do(mreq)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, m := range []string{`imagehook_events_total{hook="dockerhub",outcome="succeeded",source="dockerhub"} 1`, "imagehook_accept_to_pushed_seconds_count 1",
		"imagehook_git_commits_total 1", `imagehook_webhook_requests_total{code="200",hook="dockerhub",source="dockerhub"} 1`, "imagehook_queue_depth 0"} {
		if !strings.Contains(string(data), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}

// byID returns the element with that id, or nil.
func byID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode {
		for _, a := range n.Attr {
			if a.Key == "id" && a.Val == id {
				return n
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := byID(c, id); f != nil {
			return f
		}
	}
	return nil
}
