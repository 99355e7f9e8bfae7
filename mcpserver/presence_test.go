package mcpserver

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// A session that leaves and re-enters paf_listen many times within
// PresenceInterval (an agent serving questions back to back) announces no
// flip until the interval is over, then its state as it is; a change after a
// quiet interval is announced at once.
func TestPresenceFlipsCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fm := newFakeMesh()
		p := fm.peer()
		cfg := testConfig(t)
		cfg.PresenceInterval = time.Second
		cfg.Backend = p
		s := New(cfg)
		ctx, cancel := context.WithCancel(context.Background())
		_, stop := s.start(ctx)
		defer func() {
			cancel()
			stop()
		}()
		setListening := func(n int) {
			s.mu.Lock()
			s.listening = n
			s.mu.Unlock()
			kick(s.presenceKick)
			synctest.Wait()
		}

		synctest.Wait()
		if n, a := p.announcements(), activityOf(p); n != 1 || a != ActivityIdle {
			t.Fatalf("at start: %d announcements, activity %q; want 1, idle", n, a)
		}
		for range 100 {
			setListening(1)
			setListening(0)
		}
		setListening(1)
		if n := p.announcements(); n != 1 {
			t.Fatalf("201 flips within the interval made %d announcements, want only the first one", n)
		}
		time.Sleep(cfg.PresenceInterval)
		synctest.Wait()
		if n, a := p.announcements(), activityOf(p); n != 2 || a != ActivityListening {
			t.Fatalf("after the interval: %d announcements, activity %q; want 2, listening", n, a)
		}

		// Quiet for longer than the interval: the next change goes out at once.
		time.Sleep(2 * cfg.PresenceInterval)
		setListening(0)
		if n, a := p.announcements(), activityOf(p); n != 3 || a != ActivityIdle {
			t.Fatalf("a change after a quiet interval: %d announcements, activity %q; want 3, idle", n, a)
		}

		// Back within the interval: nothing is announced when the interval ends,
		// since the state is again what was announced last.
		setListening(1)
		setListening(0)
		time.Sleep(cfg.PresenceInterval)
		synctest.Wait()
		if n, a := p.announcements(), activityOf(p); n != 3 || a != ActivityIdle {
			t.Fatalf("a flip and back: %d announcements, activity %q; want 3, idle", n, a)
		}
	})
}

func activityOf(p *fakePeer) Activity {
	a, _ := p.activity()
	return a
}
