package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// FuzzTagListBudget reads any tag-list answer, in any chunks, through the byte budget: no more
// than the budget is ever handed on, the budget is reported overrun exactly when the answer is
// longer, and what is handed on is the answer's own prefix (the decoder sees the registry's bytes).
func FuzzTagListBudget(f *testing.F) {
	f.Add([]byte(`{"name":"a/b","tags":["1.0.0","1.1.0"]}`), uint16(16), uint8(3))
	f.Add([]byte(`{"name":"a/b","tags":[]}`), uint16(1000), uint8(1))
	f.Add(bytes.Repeat([]byte(`"1.0.0",`), 500), uint16(4096), uint8(255))
	f.Fuzz(func(t *testing.T, answer []byte, limit uint16, chunk uint8) {
		b := &tagBudget{left: int64(limit), limit: int64(limit)}
		body := &cappedBody{ReadCloser: io.NopCloser(bytes.NewReader(answer)), b: b}
		var got []byte
		buf := make([]byte, int(chunk)+1)
		var err error
		for {
			var n int
			n, err = body.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		over := len(answer) > int(limit)
		if len(got) > int(limit) || !bytes.Equal(got, answer[:len(got)]) {
			t.Fatalf("handed on %d bytes of a %d-byte answer with a budget of %d", len(got), len(answer), limit)
		}
		if b.exceeded != over || errors.Is(err, ErrTagListTooLong) != over {
			t.Fatalf("answer of %d bytes, budget %d: exceeded %v, err %v", len(answer), limit, b.exceeded, err)
		}
		if !over && !errors.Is(err, io.EOF) {
			t.Fatalf("answer within the budget ended with %v", err)
		}
		// What the listing decodes is only ever what the budget let through.
		var tags struct {
			Tags []string `json:"tags"`
		}
		_ = json.NewDecoder(&cappedBody{ReadCloser: io.NopCloser(bytes.NewReader(answer)), b: &tagBudget{left: int64(limit), limit: int64(limit)}}).Decode(&tags)
	})
}
