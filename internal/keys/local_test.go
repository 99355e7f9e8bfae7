package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLocalKeysCreatesAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "paf") // nested: LocalKeys creates the directories
	first, err := LocalKeys(dir)
	if err != nil {
		t.Fatalf("LocalKeys: %v", err)
	}
	if first.Secure {
		t.Error("local keys must not be Secure")
	}
	path := filepath.Join(dir, LocalKeyFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != KeyLen {
		t.Errorf("key file mode %v size %d, want 0600 and %d", st.Mode().Perm(), st.Size(), KeyLen)
	}
	again, err := LocalKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Relay, again.Relay) || !bytes.Equal(first.Gossip, again.Gossip) || first.MeshID != again.MeshID {
		t.Error("second LocalKeys derived different keys from the same file")
	}
	other, err := LocalKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first.Relay, other.Relay) {
		t.Error("two state dirs got the same key")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestLocalKeysConcurrentCreation(t *testing.T) {
	const peers = 8
	for round := range 20 { // repeat: the race is only exercised if starts overlap
		dir := t.TempDir()
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			results [peers]*Keys
			errs    [peers]error
		)
		for i := range peers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = LocalKeys(dir)
			})
		}
		close(start)
		wg.Wait()
		for i := range peers {
			if errs[i] != nil {
				t.Fatalf("round %d peer %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(results[i].Relay, results[0].Relay) || results[i].MeshID != results[0].MeshID {
				t.Fatalf("round %d: peer %d got a different key than peer 0", round, i)
			}
		}
		onDisk, err := os.ReadFile(filepath.Join(dir, LocalKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		want, err := derive(onDisk, false)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want.Relay, results[0].Relay) {
			t.Fatalf("round %d: returned keys do not match the key file", round)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("round %d: temporary files left behind: %v", round, entries)
		}
	}
}

func TestLocalKeysRefusesBadFile(t *testing.T) {
	tests := map[string]struct {
		content []byte
		mode    os.FileMode
		wantErr error  // errors.Is target when set
		wantMsg string // substring of the error
	}{
		"loose perms": {content: make([]byte, KeyLen), mode: 0o644, wantErr: ErrLoosePerms, wantMsg: "chmod 600"},
		"too short":   {content: make([]byte, KeyLen-1), mode: 0o600, wantMsg: "31 bytes"},
		"too long":    {content: make([]byte, KeyLen+1), mode: 0o600, wantMsg: "more than 32 bytes"},
		"empty":       {content: nil, mode: 0o600, wantMsg: "0 bytes"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, LocalKeyFile)
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			k, err := LocalKeys(dir)
			if err == nil {
				t.Fatalf("accepted a bad key file: %v", k)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %q, want it to name %s and say %q", err, path, tc.wantMsg)
			}
			// Never silently replaced.
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, tc.content) {
				t.Errorf("key file changed: %x (%v)", got, err)
			}
		})
	}
}

func TestLocalKeysAcceptsReadOnlyFile(t *testing.T) {
	dir := t.TempDir()
	first, err := LocalKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, LocalKeyFile), 0o400); err != nil {
		t.Fatal(err)
	}
	again, err := LocalKeys(dir)
	if err != nil {
		t.Fatalf("0400 key file refused: %v", err)
	}
	if !bytes.Equal(first.Relay, again.Relay) {
		t.Error("different keys after chmod 400")
	}
}
