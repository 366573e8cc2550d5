package lang

import "testing"

// TestWords: words are looked up in the language asked for, and in English for a language
// imagehook does not write (or none); Pick and Of follow the same rule.
func TestWords(t *testing.T) {
	w := Words{English: {"ok": "Image updated"}, Chinese: {"ok": "镜像更新成功"}}
	for _, tt := range []struct{ l, want string }{
		{"en", "Image updated"}, {"zh", "镜像更新成功"}, {"", "Image updated"}, {"fr", "Image updated"}, {"ZH", "Image updated"},
	} {
		if got := w.In(tt.l)["ok"]; got != tt.want {
			t.Errorf("In(%q) = %q, want %q", tt.l, got, tt.want)
		}
		if got := Pick(tt.l, "Image updated", "镜像更新成功"); got != tt.want {
			t.Errorf("Pick(%q) = %q, want %q", tt.l, got, tt.want)
		}
	}
	if Of("") != English || Of("zh") != Chinese || Known("fr") {
		t.Error("Of/Known disagree with the fallback rule")
	}
}

// TestPreferred: the first tag of Accept-Language decides; any Chinese tag is Chinese, any other
// tag English, and a header naming none falls back to English.
func TestPreferred(t *testing.T) {
	for _, tt := range []struct{ header, want string }{
		{"zh-CN,zh;q=0.9,en;q=0.8", "zh"}, {"zh-Hant-TW", "zh"}, {"en-US,zh;q=0.5", "en"}, {"de-DE", "en"},
		{"*, zh", "zh"}, {"", "en"}, {" ; q=1", "en"},
	} {
		if got := Preferred(tt.header); got != tt.want {
			t.Errorf("Preferred(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}
