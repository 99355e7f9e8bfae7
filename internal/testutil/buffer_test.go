package testutil

import (
	"strings"
	"sync"
	"testing"
)

// TestSyncBuffer writes from several goroutines while reading; -race checks the locking.
func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	const writers, writes = 8, 100
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range writes {
				if n, err := b.Write([]byte("x")); n != 1 || err != nil {
					t.Errorf("Write = %d, %v", n, err)
					return
				}
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got, want := b.String(), strings.Repeat("x", writers*writes); got != want {
		t.Fatalf("buffer holds %d bytes, want %d", len(got), len(want))
	}
}
