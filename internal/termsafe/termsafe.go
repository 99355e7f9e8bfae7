// Package termsafe makes text from other peers safe to print on a terminal.
//
// A message body, a name's description or a conversation's intent is written
// by someone else; printed raw, its escape sequences could set the terminal's
// title, clear the screen, move the cursor over earlier lines, or (with a bare
// carriage return) hide what came before on the line. Escape keeps the text
// readable and shows every such character as a visible escape instead.
// Machine output (--json) needs none of this: JSON escapes control characters.
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Escape returns s with every control character other than newline and tab
// (C0, DEL, C1), every bidirectional override or isolate (which can make a
// line read differently than it is) and every invalid UTF-8 byte replaced by
// a visible Go-style escape such as \x1b or \u202e. Text with none of those is
// returned unchanged.
func Escape(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// EscapeLine is Escape that also shows newlines and tabs as \n and \t, for
// text that must stay on one line (a description in a table).
func EscapeLine(s string) string {
	s = Escape(s)
	if !strings.ContainsAny(s, "\n\t") {
		return s
	}
	return strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(s)
}

// Clip is s on one line of at most n runes (words joined by single spaces,
// "…" where it was cut), escaped as EscapeLine escapes: another peer's text
// in a table or a one-line note.
func Clip(s string, n int) string {
	s = strings.Join(strings.Fields(EscapeLine(s)), " ")
	if n < 1 || utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func safe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' && c != '\t' || c >= 0x7f {
			return safeSlow(s)
		}
	}
	return true
}

// safeSlow is safe for text with bytes outside printable ASCII.
func safeSlow(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || unsafeRune(r) {
			return false
		}
		i += size
	}
	return true
}

func unsafeRune(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f: // C0, DEL, C1
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	}
	return false
}
