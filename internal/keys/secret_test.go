package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSecretFilePerms(t *testing.T) {
	tests := map[string]struct {
		mode    os.FileMode
		wantErr error
	}{
		"0600":            {mode: 0o600},
		"0400":            {mode: 0o400},
		"0644":            {mode: 0o644, wantErr: ErrLoosePerms},
		"0640":            {mode: 0o640, wantErr: ErrLoosePerms},
		"0604":            {mode: 0o604, wantErr: ErrLoosePerms},
		"0620 (group-w)":  {mode: 0o620, wantErr: ErrLoosePerms},
		"0602 (other-w)":  {mode: 0o602, wantErr: ErrLoosePerms},
		"0700 (owner-x)":  {mode: 0o700},
		"0666 (everyone)": {mode: 0o666, wantErr: ErrLoosePerms},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			// Chmod after writing: WriteFile's mode is filtered by the umask.
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := LoadSecretFile(path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				wantMsg := "keys: secret file " + path + " has mode " + fmt.Sprintf("%04o", tc.mode) + "; run: chmod 600 " + path
				if err.Error() != wantMsg {
					t.Errorf("error message\n got %q\nwant %q", err.Error(), wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadSecretFile: %v", err)
			}
			if string(got) != testSecret+"\n" {
				t.Errorf("got %q", got)
			}
			// The file content and the same secret from the environment agree.
			fromFile, err := FromSecret(got)
			if err != nil {
				t.Fatal(err)
			}
			if fromFile.MeshID != mustFromSecret(t, testSecret).MeshID {
				t.Error("secret file with trailing newline derived different keys")
			}
		})
	}
}

func TestLoadSecretFileErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxSecretFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		path    string
		wantErr error  // matched with errors.Is when set
		wantMsg string // substring of the message
	}{
		"missing":   {path: filepath.Join(dir, "nope"), wantErr: fs.ErrNotExist, wantMsg: "does not exist"},
		"directory": {path: dir, wantMsg: "not a regular file"},
		"too large": {path: big, wantMsg: "larger than"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := LoadSecretFile(tc.path)
			if err == nil {
				t.Fatalf("no error, read %d bytes", len(b))
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("err = %q, want it to name %s and say %q", err, tc.path, tc.wantMsg)
			}
		})
	}
}

func TestSecretFromEnv(t *testing.T) {
	tests := map[string]struct {
		env        map[string]string
		wantSecret string
		wantSource string
	}{
		"none":             {env: nil},
		"paf":              {env: map[string]string{EnvSecret: "a"}, wantSecret: "a", wantSource: EnvSecret},
		"legacy":           {env: map[string]string{EnvSecretLegacy: "b"}, wantSecret: "b", wantSource: EnvSecretLegacy},
		"both prefers paf": {env: map[string]string{EnvSecret: "a", EnvSecretLegacy: "b"}, wantSecret: "a", wantSource: EnvSecret},
		"empty paf falls back": {
			env:        map[string]string{EnvSecret: "", EnvSecretLegacy: "b"},
			wantSecret: "b", wantSource: EnvSecretLegacy,
		},
		"whitespace is returned for FromSecret to refuse": {
			env:        map[string]string{EnvSecret: " "},
			wantSecret: " ", wantSource: EnvSecret,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			secret, source := SecretFromEnv(func(k string) string { return tc.env[k] })
			if string(secret) != tc.wantSecret || source != tc.wantSource {
				t.Errorf("got (%q, %q), want (%q, %q)", secret, source, tc.wantSecret, tc.wantSource)
			}
			if tc.wantSource == "" && secret != nil {
				t.Errorf("secret = %q, want nil when no variable is set", secret)
			}
		})
	}
}
