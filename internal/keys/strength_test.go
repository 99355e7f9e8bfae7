package keys

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestSecretStrength(t *testing.T) {
	tests := map[string]struct {
		secret string
		weak   bool
	}{
		// The secret of the review: 19 characters, passes the length check, found in 2,696 guesses.
		"19 lower-case letters":        {secret: "paf-mesh-our-secret", weak: true},
		"16 digits":                    {secret: "1234567890123456", weak: true},
		"repeated character":           {secret: strings.Repeat("a", 60), weak: true},
		"alternating pair":             {secret: strings.Repeat("ab", 40), weak: true},
		"sequence":                     {secret: "abcdefghijklmnopqrstuvwxyz0123456789", weak: true},
		"24 mixed random-looking":      {secret: "x7Qp2LmZ9vK4tR8wB3nY6cHs", weak: false},
		"openssl rand -base64 32":      {secret: "3q0mC0uHq8VbR3V7m1a2ZyKcQe9XlS0pWfT4uB6nJgE=", weak: false},
		"whitespace does not count":    {secret: "   \n1234567890123456\n", weak: true},
		"non-ASCII counts but is weak": {secret: "ééééééééééééééééé", weak: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			bits := SecretStrength([]byte(tc.secret))
			warn := WeakSecretWarning([]byte(tc.secret))
			if (warn != "") != tc.weak || (bits < StrongSecretBits) != tc.weak {
				t.Fatalf("strength %.1f bits, warning %q; want weak=%v", bits, warn, tc.weak)
			}
			if warn != "" {
				for _, want := range []string{"weak", "paf-peer secret new", "128"} {
					if !strings.Contains(warn, want) {
						t.Errorf("warning %q does not say %q", warn, want)
					}
				}
				if strings.Contains(warn, strings.TrimSpace(tc.secret)) {
					t.Error("the warning quotes the secret")
				}
			}
		})
	}
	if SecretStrength(nil) != 0 {
		t.Error("empty secret has strength")
	}
}

// At the edge: a secret just under 128 bits warns, one just over does not. With digits, upper
// and lower case (62 symbols, 5.95 bits each, no runs), 21 characters estimate at 125 bits and
// 22 at 131.
func TestWeakSecretWarningEdge(t *testing.T) {
	const alphabet = "aZ0bY1cX2dW3eV4fU5gT6hS7iR8"
	for n, weak := range map[int]bool{21: true, 22: false} {
		s := []byte(alphabet[:n])
		if got := WeakSecretWarning(s) != ""; got != weak {
			t.Errorf("%d characters (%.1f bits): warning=%v, want %v", n, SecretStrength(s), got, weak)
		}
	}
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		s := NewSecret()
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(raw) != NewSecretBytes {
			t.Fatalf("NewSecret() = %q: %d bytes, %v; want %d random bytes", s, len(raw), err, NewSecretBytes)
		}
		if seen[s] {
			t.Fatalf("NewSecret repeated %q", s)
		}
		seen[s] = true
		if w := WeakSecretWarning([]byte(s)); w != "" {
			t.Fatalf("a new secret is called weak (%.1f bits): %s", SecretStrength([]byte(s)), w)
		}
		if _, err := FromSecret([]byte(s)); err != nil {
			t.Fatalf("a new secret is refused: %v", err)
		}
	}
}

// The 128-bit hex secrets the LAN tests use (and `openssl rand -hex 16` makes) are not warned
// about: a warning must mean something.
func TestRandomHexSecretsAreNotWeak(t *testing.T) {
	for range 200 {
		s := NewSecret()
		raw, _ := base64.RawURLEncoding.DecodeString(s)
		h := hex.EncodeToString(raw[:16])
		if w := WeakSecretWarning([]byte(h)); w != "" {
			t.Fatalf("random 128-bit hex secret %s estimated at %.1f bits", h, SecretStrength([]byte(h)))
		}
	}
}
