package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"plain":              {"hello, world", "hello, world"},
		"unicode kept":       {"héllo — 日本 🙂", "héllo — 日本 🙂"},
		"newline and tab":    {"a\n\tb", "a\n\tb"},
		"set title":          {"\x1b]0;pwned\x07rest", `\x1b]0;pwned\x07rest`},
		"clear screen":       {"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		"bare CR":            {"harmless\rrm -rf ~", `harmless\x0drm -rf ~`},
		"backspace":          {"ab\bc", `ab\x08c`},
		"DEL":                {"a\x7fb", `a\x7fb`},
		"C1 CSI":             {"a\u009b2Jb", `a\x9b2Jb`},
		"bidi override":      {"abc\u202edef", `abc\u202edef`},
		"bidi isolate":       {"x\u2066y\u2069", `x\u2066y\u2069`},
		"invalid UTF-8":      {"a\xffb", `a\xffb`},
		"truncated UTF-8":    {"a\xe6\x97", `a\xe6\x97`},
		"NUL":                {"a\x00b", `a\x00b`},
		"bell in the middle": {"ring\x07ring", `ring\x07ring`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Escape(tc.in); got != tc.want {
				t.Fatalf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestEscapeLine(t *testing.T) {
	if got := EscapeLine("a\nb\tc\x1b"); got != `a\nb\tc\x1b` {
		t.Fatalf("EscapeLine = %q", got)
	}
	if got := EscapeLine("plain"); got != "plain" {
		t.Fatalf("EscapeLine = %q", got)
	}
}

// What Escape returns never holds a character a terminal acts on (other than newline
// and tab), is valid UTF-8, and leaves safe text as it was.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b]0;t\x07", "a\rb", "\u202e", "\xff\xfe", "日本\u0085"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Escape(%q) = %q: not UTF-8", s, out)
		}
		for _, r := range out {
			if unsafeRune(r) {
				t.Fatalf("Escape(%q) = %q keeps %U", s, out, r)
			}
		}
		if safe(s) && out != s {
			t.Fatalf("safe text changed: %q -> %q", s, out)
		}
		if line := EscapeLine(s); strings.ContainsAny(line, "\n\t") {
			t.Fatalf("EscapeLine(%q) = %q keeps a newline or tab", s, line)
		}
	})
}

func TestClip(t *testing.T) {
	cases := map[string]struct {
		in   string
		n    int
		want string
	}{
		"short":            {"a  b\nc", 10, `a b\nc`},
		"cut":              {"abcdef", 4, "abc…"},
		"exactly":          {"abcd", 4, "abcd"},
		"escapes count":    {"\x1b[2J", 40, `\x1b[2J`},
		"runes, not bytes": {"日本語テキスト", 3, "日本…"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Clip(tc.in, tc.n); got != tc.want {
				t.Fatalf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}
