package keys

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testSecret = "correct horse battery staple 42"

func mustFromSecret(t *testing.T, s string) *Keys {
	t.Helper()
	k, err := FromSecret([]byte(s))
	if err != nil {
		t.Fatalf("FromSecret(%q): %v", s, err)
	}
	return k
}

func TestFromSecretDeterministic(t *testing.T) {
	a := mustFromSecret(t, testSecret)
	b := mustFromSecret(t, testSecret)
	if !bytes.Equal(a.Gossip, b.Gossip) || !bytes.Equal(a.Relay, b.Relay) || a.MeshID != b.MeshID {
		t.Fatalf("same secret gave different keys: %v vs %v", a, b)
	}
	if !a.Secure {
		t.Error("keys from a secret must be Secure")
	}
	if len(a.Gossip) != KeyLen || len(a.Relay) != KeyLen {
		t.Errorf("key lengths gossip=%d relay=%d, want %d", len(a.Gossip), len(a.Relay), KeyLen)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(a.MeshID) {
		t.Errorf("MeshID %q is not 16 lowercase hex chars", a.MeshID)
	}
}

func TestFromSecretSeparation(t *testing.T) {
	a := mustFromSecret(t, testSecret)
	b := mustFromSecret(t, testSecret+"!")
	if bytes.Equal(a.Gossip, b.Gossip) || bytes.Equal(a.Relay, b.Relay) || a.MeshID == b.MeshID {
		t.Fatalf("different secrets share a key: %v vs %v", a, b)
	}
	if bytes.Equal(a.Gossip, a.Relay) {
		t.Fatal("gossip and relay keys are equal")
	}
	idBytes, _ := hex.DecodeString(a.MeshID)
	for name, k := range map[string][]byte{"gossip": a.Gossip, "relay": a.Relay, "secret": []byte(testSecret)} {
		if bytes.Contains(k, idBytes) {
			t.Errorf("mesh id bytes appear in the %s key", name)
		}
	}
}

func TestFromSecretTrimsWhitespace(t *testing.T) {
	want := mustFromSecret(t, testSecret)
	for name, in := range map[string]string{
		"trailing newline": testSecret + "\n",
		"crlf":             testSecret + "\r\n",
		"leading spaces":   "  \t" + testSecret,
		"both":             "\n " + testSecret + " \n",
	} {
		t.Run(name, func(t *testing.T) {
			got := mustFromSecret(t, in)
			if !bytes.Equal(got.Relay, want.Relay) || got.MeshID != want.MeshID {
				t.Fatalf("%q derived different keys from %q", in, testSecret)
			}
		})
	}
}

func TestFromSecretErrors(t *testing.T) {
	tests := map[string]struct {
		secret  string
		wantErr error
	}{
		"empty":              {secret: "", wantErr: ErrSecretEmpty},
		"whitespace only":    {secret: " \n\t ", wantErr: ErrSecretEmpty},
		"one byte":           {secret: "x", wantErr: ErrSecretTooShort},
		"15 bytes":           {secret: strings.Repeat("a", MinSecretLen-1), wantErr: ErrSecretTooShort},
		"15 bytes + padding": {secret: "  " + strings.Repeat("a", MinSecretLen-1) + "\n", wantErr: ErrSecretTooShort},
		"16 bytes":           {secret: strings.Repeat("a", MinSecretLen)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			k, err := FromSecret([]byte(tc.secret))
			if tc.wantErr == nil {
				if err != nil || k == nil {
					t.Fatalf("FromSecret: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if k != nil {
				t.Error("keys returned with an error")
			}
			if !strings.Contains(err.Error(), "openssl rand -base64 32") {
				t.Errorf("error does not say how to make a secret: %v", err)
			}
		})
	}
}

func TestStringHidesKeys(t *testing.T) {
	k := mustFromSecret(t, testSecret)
	open := *k
	open.Secure = false
	tests := map[string]struct {
		keys *Keys
		want string
	}{
		"secure": {keys: k, want: "keys{secure mesh=" + k.MeshID[:4] + "…}"},
		"open":   {keys: &open, want: "keys{open mesh=" + k.MeshID[:4] + "…}"},
		"nil":    {keys: nil, want: "keys{nil}"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.keys.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}

	// Every way a *Keys is likely to reach a log must leave out the key bytes.
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("x", "keys", k)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("x", "keys", k)
	outputs := map[string]string{
		"%v":  fmt.Sprintf("%v", k),
		"%+v": fmt.Sprintf("%+v", k),
		"%#v": fmt.Sprintf("%#v", k),
		//lint:ignore S1025 the test is of what the %s verb prints, not of String
		"%s":   fmt.Sprintf("%s", k),
		"json": jsonLog.String(),
		"text": textLog.String(),
	}
	for how, out := range outputs {
		for name, key := range map[string][]byte{"gossip": k.Gossip, "relay": k.Relay} {
			for _, enc := range []string{hex.EncodeToString(key), fmt.Sprint(key), string(key)} {
				if strings.Contains(out, enc) {
					t.Errorf("%s output contains the %s key: %s", how, name, out)
				}
			}
		}
		if strings.Contains(out, k.MeshID) {
			t.Errorf("%s output contains the full mesh id (only a prefix is expected): %s", how, out)
		}
	}
}
