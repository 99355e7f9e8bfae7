package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math"
)

// StrongSecretBits is the estimated strength below which a secret gets a warning: 128 bits,
// the security level of the keys derived from it.
const StrongSecretBits = 128

// NewSecretBytes is the entropy of a secret made by NewSecret: 256 bits.
const NewSecretBytes = 32

// NewSecret returns a new random secret: 256 bits from crypto/rand, as 43 characters of
// unpadded URL-safe base64 (no characters that need quoting in a shell or an env file).
func NewSecret() string {
	b := make([]byte, NewSecretBytes)
	// crypto/rand.Read never fails on supported platforms (it aborts the program instead).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// SecretStrength estimates the strength of a secret in bits, as if each character were drawn
// at random from the character classes the secret uses (lower case, upper case, digits, other
// printable ASCII; any non-ASCII byte counts as one of 128 more), then discounts what random
// draws would rarely give: a character that continues a run of the two before it with the same
// step of -1, 0 or +1 ("aaaa", "1234", "dcba") or repeats a short pattern ("abab", "abcabc")
// counts 1 bit. It is an upper bound: it cannot tell a random string from words, names or a
// reused password, so a secret of words that passes it can still be weak. A secret from
// NewSecret estimates at about 250 bits.
func SecretStrength(secret []byte) float64 {
	s := bytes.TrimSpace(secret)
	if len(s) == 0 {
		return 0
	}
	var lower, upper, digit, other, high bool
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		case '0' <= c && c <= '9':
			digit = true
		case c < 0x80:
			other = true
		default:
			high = true
		}
	}
	pool := 0
	for _, class := range []struct {
		used bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {other, 33}, {high, 128}} {
		if class.used {
			pool += class.size
		}
	}
	perChar := math.Log2(float64(pool))
	var bits float64
	for i := range s {
		if i > 1 && (inRun(s[i-2], s[i-1], s[i]) || repeats(s, i)) {
			bits++
		} else {
			bits += perChar
		}
	}
	return bits
}

// repeats reports whether s[i] and s[i-1] repeat the two characters p places back, for a period
// p of 1 to 4 ("abab", "abcabc"). Two in a row, so that random strings rarely match (about 1
// character in 85 for hex) while repeated patterns always do.
func repeats(s []byte, i int) bool {
	for p := 1; p <= 4 && i-1-p >= 0; p++ {
		if s[i] == s[i-p] && s[i-1] == s[i-1-p] {
			return true
		}
	}
	return false
}

// inRun reports whether c continues a, b with the same step of -1, 0 or +1 ("aaa", "123").
func inRun(a, b, c byte) bool {
	d := int(c) - int(b)
	return d >= -1 && d <= 1 && int(b)-int(a) == d
}

// WeakSecretWarning returns a one-line warning for a secret whose estimated strength
// (SecretStrength) is under StrongSecretBits, saying how to make a strong one, or "" for a
// strong secret. It never quotes the secret.
func WeakSecretWarning(secret []byte) string {
	bits := SecretStrength(secret)
	if bits >= StrongSecretBits {
		return ""
	}
	return fmt.Sprintf("the shared secret looks weak (about %.0f bits estimated, under %d): "+
		"anyone who records the mesh's traffic can try guesses offline; make a strong one with "+
		"'paf-peer secret new' (256 random bits) and give it to every peer", bits, StrongSecretBits)
}
