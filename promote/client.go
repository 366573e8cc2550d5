package promote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// Client calls a running imagehook's pipelines API (the CLI's pipelines, approve, reject, hold and
// release commands).
type Client struct {
	// Server is the base URL, like https://imagehook.example.com.
	Server string
	// Token is sent as a bearer token: an approver's, or the admin token.
	Token string
	HTTP  *http.Client
}

// maxResponse bounds what the client reads of an answer.
const maxResponse = 8 << 20

// Pipelines returns every pipeline's state.
func (c *Client) Pipelines(ctx context.Context) ([]PipelineView, error) {
	var out []PipelineView
	return out, c.do(ctx, http.MethodGet, "/pipelines", nil, &out)
}

// Act approves, rejects, holds or releases a stage; digest guards an approval (may be "").
func (c *Client) Act(ctx context.Context, pipeline, stage, action, digest, comment string) (StageView, error) {
	body, _ := json.Marshal(map[string]string{"digest": digest, "comment": comment})
	var out StageView
	path := "/pipelines/" + url.PathEscape(pipeline) + "/stages/" + url.PathEscape(stage) + "/" + url.PathEscape(action)
	return out, c.do(ctx, http.MethodPost, path, body, &out)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Server, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return nil
}

// WriteTable prints pipelines as a table: a line per stage with what it runs, its candidate and
// what it waits on.
func WriteTable(w io.Writer, ps []PipelineView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tSTAGE\tRUNS\tREADY\tCANDIDATE\tSTATE")
	for _, p := range ps {
		for _, s := range p.Stages {
			ready, cand, state := "-", "-", string(s.State)
			if !s.ReadyAt.IsZero() {
				ready = s.ReadyAt.Local().Format(time.DateTime)
			}
			if s.Candidate != nil {
				cand = s.Candidate.Image
				if s.Candidate.Digest != "" {
					cand += "@" + shortDigest(s.Candidate.Digest)
				}
			}
			switch {
			case s.After == "" && s.Held == nil:
				state = "entered by pushes"
			case s.State == ReasonOpen && s.Candidate != nil:
				state = "promoting"
			}
			if s.Detail != "" {
				state += ": " + s.Detail
			}
			runs := s.Image
			if runs == "" {
				runs = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, s.Name, runs, ready, cand, state)
		}
	}
	return tw.Flush()
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}
