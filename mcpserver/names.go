package mcpserver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// ensureName returns this session's name, first registering given (the
// my_name / session_name argument named param) when the session has none.
func (s *Server) ensureName(ctx context.Context, given, param string) (string, error) {
	cur := s.b.Name()
	if strings.TrimSpace(given) == "" {
		if cur == "" {
			return "", userErrorf("This session has no name yet: call paf_register first, or pass %s.", param)
		}
		return cur, nil
	}
	n, err := mesh.NormalizeName(given)
	if err != nil {
		return "", err
	}
	switch cur {
	case n:
		return n, nil
	case "":
		if err := s.claim(ctx, n); err != nil {
			return "", err
		}
		s.nameChanged()
		return n, nil
	}
	return "", userErrorf("This session is registered as %s, not %s: leave %s out, or call paf_rename to change the name.", cur, n, param)
}

// claimBudget bounds a tool call up to the end of its claim, joining time
// included: the backend may wait for a crashed session's name to be released,
// and the call must still answer well inside a client's 60 s.
const claimBudget = 45 * time.Second

// claim takes name for this session within what is left of claimBudget
// (at least a moment, for a claim that needs no waiting).
func (s *Server) claim(ctx context.Context, name string) error {
	deadline := callStart(ctx).Add(claimBudget)
	if soon := time.Now().Add(2 * time.Second); deadline.Before(soon) {
		deadline = soon
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return s.b.Claim(cctx, name)
}

// nameChanged wakes what depends on the name: the push loop and waits.
func (s *Server) nameChanged() {
	s.mu.Lock()
	s.bumpLocked()
	s.mu.Unlock()
	kick(s.pushKick)
	s.kickPresence()
}

func (s *Server) register(ctx context.Context, _ mcp.CallToolRequest, a registerArgs) (*reply, error) {
	n, err := mesh.NormalizeName(a.Name)
	if err != nil {
		return nil, err
	}
	cur := s.b.Name()
	if cur != "" && cur != n {
		return nil, userErrorf("This session is already registered as %s. To change the name call paf_rename(new_name=%q): messages sent to %s are then forwarded.", cur, n, cur)
	}
	if cur == "" {
		if err := s.claim(ctx, n); err != nil {
			return nil, err
		}
		s.nameChanged()
	}
	if a.Description != "" {
		if err := s.b.SetDescription(ctx, a.Description); err != nil {
			return nil, err
		}
	}
	others := s.sessions()
	var b strings.Builder
	if cur == n {
		fmt.Fprintf(&b, "Already registered as %s.", n)
	} else {
		fmt.Fprintf(&b, "Registered as %s.", n)
	}
	if a.Description != "" {
		fmt.Fprintf(&b, " Description: %s.", strings.TrimRight(a.Description, "."))
	}
	var names []string
	for _, p := range others {
		if !p.You {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		b.WriteString("\nNo other session is online yet.")
	} else {
		fmt.Fprintf(&b, "\n%s online: %s (paf_list_sessions shows more).", plural(len(names), "other session", "other sessions"), strings.Join(names, ", "))
	}
	unread := s.unread()
	if unread == 0 {
		b.WriteString("\nNo unread messages.")
	}
	return &reply{text: b.String(), data: map[string]any{"name": n, "description": a.Description, "online": nonNil(names)}}, nil
}

func (s *Server) rename(ctx context.Context, _ mcp.CallToolRequest, a renameArgs) (*reply, error) {
	n, err := mesh.NormalizeName(a.NewName)
	if err != nil {
		return nil, err
	}
	old := s.b.Name()
	if old == "" {
		return nil, userErrorf("This session has no name to rename: call paf_register(name=%q) instead.", n)
	}
	if old == n {
		return &reply{text: fmt.Sprintf("This session is already called %s.", n), data: map[string]any{"name": n}}, nil
	}
	if err := s.b.Rename(ctx, n); err != nil {
		return nil, err
	}
	s.nameChanged()
	until := ""
	for _, f := range s.b.Forwards() {
		if f.From == old && f.To == n {
			until = stamp(f.Expires)
		}
	}
	text := fmt.Sprintf("Renamed from %s to %s. Messages sent to %s are forwarded to %s", old, n, old, n)
	if until != "" {
		text += " until " + until
	}
	return &reply{text: text + ".", data: map[string]any{"name": n, "old_name": old, "forwarded_until": until}}, nil
}

// sessionJSON is one session in paf_list_sessions and paf://peers.
type sessionJSON struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Host        string `json:"host,omitempty"`
	State       string `json:"state"`    // alive or suspect
	Activity    string `json:"activity"` // idle, listening or busy
	// Since is how long the session has been in that activity, as seen
	// from here, in whole seconds.
	Since int64  `json:"since_seconds"`
	Focus string `json:"focus,omitempty"`
	You   bool   `json:"you,omitempty"`
}

type forwardJSON struct {
	From      string `json:"from"`
	To        string `json:"to"`
	ExpiresAt string `json:"expires_at"`
}

// sessions is every named peer online, with how long each has been in its
// current activity (first seen by this session; gossip carries no clock).
func (s *Server) sessions() []sessionJSON {
	now := s.cfg.Now()
	var out []sessionJSON
	s.mu.Lock()
	defer s.mu.Unlock()
	live := map[string]bool{}
	for _, m := range s.b.Members() {
		if m.Meta.Name == "" || (m.State != mesh.MemberAlive && m.State != mesh.MemberSuspect) {
			continue
		}
		live[m.ID] = true
		activity, focus := MetaPresence(m.Meta)
		key := activity.String() + "\x00" + focus
		seen, ok := s.seen[m.ID]
		if !ok || seen.key != key {
			since := now
			if !ok && !m.Since.IsZero() && m.Since.Before(now) {
				since = m.Since // never seen changing: in it since it joined
			}
			seen = activitySeen{key: key, since: since.UnixMilli()}
			s.seen[m.ID] = seen
		}
		out = append(out, sessionJSON{
			Name: m.Meta.Name, Description: MetaDescription(m.Meta), Host: m.Meta.Host,
			State: m.State.String(), Activity: activity.String(), Focus: focus,
			Since: max(0, (now.UnixMilli()-seen.since)/1000), You: m.Self,
		})
	}
	for id := range s.seen {
		if !live[id] {
			delete(s.seen, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Server) forwards() []forwardJSON {
	out := []forwardJSON{}
	for _, f := range s.b.Forwards() {
		if f.To != "" {
			out = append(out, forwardJSON{From: f.From, To: f.To, ExpiresAt: stamp(f.Expires)})
		}
	}
	return out
}

func (s *Server) listSessions(context.Context, mcp.CallToolRequest, noArgs) (*reply, error) {
	list := s.sessions()
	fwds := s.forwards()
	var b strings.Builder
	if len(list) == 0 {
		b.WriteString("No named session is online. paf_register a name, and others will see you here.")
	} else {
		fmt.Fprintf(&b, "%s online:\n", plural(len(list), "session", "sessions"))
	}
	for _, p := range list {
		b.WriteString("- " + p.Name)
		if p.You {
			b.WriteString(" (you)")
		}
		if p.Description != "" {
			b.WriteString(": " + clip(p.Description, 200))
		}
		var facts []string
		if p.Host != "" {
			facts = append(facts, "host "+p.Host)
		}
		facts = append(facts, fmt.Sprintf("%s for %s", p.Activity, ago(secondsDur(p.Since))))
		if p.Focus != "" {
			facts = append(facts, "focus: "+clip(p.Focus, 200))
		}
		if p.State != "alive" {
			facts = append(facts, "not answering probes ("+p.State+")")
		}
		fmt.Fprintf(&b, " [%s]\n", strings.Join(facts, "; "))
	}
	if len(fwds) > 0 {
		b.WriteString("Renamed (messages to the old name are forwarded):\n")
		for _, f := range fwds {
			fmt.Fprintf(&b, "- %s -> %s until %s\n", f.From, f.To, f.ExpiresAt)
		}
	}
	return &reply{text: b.String(), data: map[string]any{"sessions": nonNil(list), "forwards": fwds}}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
