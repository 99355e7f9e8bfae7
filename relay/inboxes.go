package relay

import (
	"fmt"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// Moving and closing the inboxes of names this peer stops holding (a rename, a lost claim).

// MoveInbox moves the unread messages of old into the inbox of new, in
// order, after this peer renamed itself from old to new, and closes old's
// inbox. The messages keep their ids, so nothing is shown twice.
func (r *Relay) MoveInbox(old, new string) error {
	if r.dir.Name() != new {
		return fmt.Errorf("relay: this peer does not hold %q: %w", new, mesh.ErrNoName)
	}
	src, err := r.inbox(old)
	if err != nil {
		return err
	}
	dst, err := r.inbox(new)
	if err != nil {
		return err
	}
	ms, err := src.Peek()
	if err != nil {
		return err
	}
	errs := make(chan error, len(ms))
	for i := range ms {
		m := ms[i]
		dst.Add(&m, nil, false, func(err error) { errs <- err })
	}
	ids := make([]string, len(ms))
	for i := range ms {
		ids[i] = ms[i].ID
		if err := <-errs; err != nil {
			return fmt.Errorf("relay: move unread messages from %q to %q: %w", old, new, err)
		}
	}
	if _, err := src.Remove(ids); err != nil {
		return err
	}
	return r.CloseInbox(old)
}

// CloseInbox closes the inbox of a name this peer no longer holds, so the
// next holder (maybe another process) can open it.
func (r *Relay) CloseInbox(name string) error {
	r.mu.Lock()
	ib, ok := r.inboxes[name]
	delete(r.inboxes, name)
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return ib.Close()
}
