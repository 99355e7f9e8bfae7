package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/statedir"
	"github.com/paf-mesh/paf-mesh/internal/termsafe"
	"github.com/paf-mesh/paf-mesh/relay"
)

// HookInput is the part of a Claude Code hook's stdin JSON a hook uses.
type HookInput struct {
	SessionID      string `json:"session_id"`
	StopHookActive bool   `json:"stop_hook_active"` // Claude is already going on because of a Stop hook
	HookEventName  string `json:"hook_event_name"`
}

// maxHookInput bounds what a hook reads from stdin: hook inputs are small,
// but a UserPromptSubmit carries the whole prompt.
const maxHookInput = 8 << 20

// ReadHookInput reads a hook's JSON input from r (at most maxHookInput bytes).
func ReadHookInput(r io.Reader) (HookInput, error) {
	var in HookInput
	if r == nil {
		return in, errors.New("read hook input: no stdin")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxHookInput+1))
	if err != nil {
		return in, fmt.Errorf("read hook input: %w", err)
	}
	if len(b) > maxHookInput {
		return in, fmt.Errorf("read hook input: more than %d bytes on stdin", maxHookInput)
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return in, fmt.Errorf("hook input is not JSON (%v): run paf-peer hook as a Claude Code hook command, which passes the event on stdin", err)
	}
	return in, nil
}

// HookPeerWait is how long a hook waits for its session's peer to appear: a
// SessionStart hook can run before the client has started `paf-peer mcp`, and
// the peer is advertised well within this (SPEC section 11: at most 2 s).
const HookPeerWait = 2 * time.Second

// SessionPeer finds the peer a hook command reports on: the live local holder
// of name when name is given, else the named peer started by the hook's
// client (PeerStartedBy, from the hook's parent ppid). It looks again every
// 50 ms for up to wait, and returns "", "" if none appears.
func SessionPeer(ctx context.Context, runDir, name string, ppid int, wait time.Duration) (peerName, control string) {
	deadline := time.Now().Add(wait)
	for {
		if name != "" {
			peerName, control = name, LocalHolder(runDir, name)
		} else {
			peerName, control = PeerStartedBy(runDir, ppid)
		}
		if control != "" || !time.Now().Before(deadline) {
			return peerName, control
		}
		select {
		case <-ctx.Done():
			return "", ""
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// maxHookSeen bounds the message ids remembered per session: far more than a
// session has unread at once.
const maxHookSeen = 4096

// FreshForStop returns the ids among ids that no earlier Stop hook of session
// has woken it for, and remembers them, so that a Stop hook wakes an idle
// session once per new message and never in a loop over messages the model
// chose not to read yet. The memory is a small file per session under
// stateDir/hooks, named by a hash of the session id (nothing a client sends
// becomes part of a path), written atomically.
func FreshForStop(stateDir, session string, ms []relay.JSONMessage) ([]string, error) {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	if session == "" {
		return ids, nil // nothing to key the memory on: every message is new
	}
	dir := filepath.Join(stateDir, "hooks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("hook memory: %w", err)
	}
	h := sha256.Sum256([]byte("paf hook session\x00" + session))
	path := filepath.Join(dir, hex.EncodeToString(h[:16])+".json")
	var seen []string
	switch b, err := os.ReadFile(path); {
	case err == nil:
		if json.Unmarshal(b, &seen) != nil {
			seen = nil // damaged: start again (at worst one extra wake)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("hook memory: %w", err)
	}
	var fresh []string
	for _, id := range ids {
		if !slices.Contains(seen, id) {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	seen = append(seen, fresh...)
	if len(seen) > maxHookSeen {
		seen = seen[len(seen)-maxHookSeen:]
	}
	b, err := json.Marshal(seen)
	if err != nil {
		return nil, err
	}
	if err := statedir.WriteFileAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("hook memory: %w", err)
	}
	return fresh, nil
}

// UnreadNote summarises unread messages for the model: who wrote, a preview,
// and what to call to read them.
func UnreadNote(name string, ms []relay.JSONMessage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "paf: %d unread message(s) for %s.", len(ms), name)
	for i, m := range ms {
		if i == 5 {
			fmt.Fprintf(&b, " …and %d more.", len(ms)-5)
			break
		}
		fmt.Fprintf(&b, " From %s: %q.", m.From, termsafe.Clip(m.Body, 120))
	}
	b.WriteString(" Call paf_check (or paf_listen) to read them in full and reply.")
	return b.String()
}
