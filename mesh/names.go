package mesh

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest name a peer may hold.
const MaxNameLen = 64

// ErrInvalidName is wrapped by every name validation error.
var ErrInvalidName = errors.New("invalid name")

// NormalizeName lower-cases name and checks it against the naming rule: 1-64
// characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit.
// The error says which part of the rule was broken, for the user to act on.
func NormalizeName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch {
	case n == "":
		return "", fmt.Errorf("%w: a name must not be empty (use 1-%d characters of a-z 0-9 . _ -)", ErrInvalidName, MaxNameLen)
	case len(n) > MaxNameLen:
		return "", fmt.Errorf("%w: %q is %d characters long; the limit is %d", ErrInvalidName, clip(name, 20), len(n), MaxNameLen)
	case !isAlnum(n[0]):
		return "", fmt.Errorf("%w: %q must start with a letter or digit", ErrInvalidName, name)
	}
	for _, r := range n {
		if r >= utf8.RuneSelf || !isAlnum(byte(r)) && r != '.' && r != '_' && r != '-' {
			return "", fmt.Errorf("%w: %q contains %q; use only a-z 0-9 . _ -", ErrInvalidName, clip(name, 70), r)
		}
	}
	return n, nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// clip shortens s for error messages so that a hostile 1 MB name does not end
// up in a log line.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
