package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/promote"
)

// pipelines prints a running imagehook's pipelines.
func pipelines(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pipelines", flag.ContinueOnError)
	server := fs.String("server", "", "imagehook's URL, like https://imagehook.example.com")
	tokenFile := fs.String("token-file", "", "file holding the admin token (when the server has admin: set)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := client(*server, *tokenFile, false)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ps, err := c.Pipelines(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ps)
	}
	return promote.WriteTable(stdout, ps)
}

// stageAction runs approve, reject, hold or release against a running imagehook.
func stageAction(action string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	server := fs.String("server", "", "imagehook's URL, like https://imagehook.example.com")
	pipeline := fs.String("pipeline", "", "pipeline name")
	stage := fs.String("stage", "", "stage name")
	digest := fs.String("digest", "", "the candidate's digest you checked (approve and reject refuse another)")
	comment := fs.String("comment", "", "a comment recorded with the decision")
	tokenFile := fs.String("token-file", "", "file holding your approver token (or the admin token for hold and release)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pipeline == "" || *stage == "" {
		return fmt.Errorf("%s: --pipeline and --stage are required", action)
	}
	c, err := client(*server, *tokenFile, true)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	v, err := c.Act(ctx, *pipeline, *stage, action, *digest, *comment)
	if err != nil {
		return err
	}
	return promote.WriteTable(stdout, []promote.PipelineView{{Name: *pipeline, Stages: []promote.StageView{v}}})
}

func client(server, tokenFile string, needToken bool) (*promote.Client, error) {
	if server == "" {
		return nil, errors.New("--server is required")
	}
	c := &promote.Client{Server: server}
	if tokenFile == "" {
		if needToken {
			return nil, errors.New("--token-file is required")
		}
		return c, nil
	}
	data, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	c.Token = config.TrimSecret(strings.TrimRight(string(data), "\r\n"))
	return c, nil
}
