package relay

// What the MCP server (package mcpserver, through cmd/paf-peer) needs beyond
// Peek/Ack/Wait: a way to notice every change of an inbox, not only "there
// is something unread", so that it can push each arriving message once.

// InboxState returns the number of unread messages of name and a channel
// that is closed at the inbox's next change (a message added, or messages
// marked read). name must be held by this peer. The channel of an inbox that
// is closed (its name moved away) is never closed: a caller that waits on it
// must also watch for its own name changing.
func (r *Relay) InboxState(name string) (unread int, changed <-chan struct{}, err error) {
	ib, err := r.ownInbox(name)
	if err != nil {
		return 0, nil, err
	}
	unread, changed = ib.State()
	return unread, changed, nil
}
