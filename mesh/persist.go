package mesh

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/paf-mesh/paf-mesh/internal/statedir"
)

const forwardsFile = "forwards.json"

// loadForwards restores the forwarding table this peer (or the peer whose
// state dir it adopted) persisted, dropping expired entries.
func (p *Peer) loadForwards() error {
	if p.cfg.StateDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(p.cfg.StateDir, forwardsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	fs, _, err := decodeForwards(b)
	if err != nil {
		return err
	}
	now := p.now()
	for _, f := range fs {
		p.forwards.apply(f, now)
	}
	return nil
}

// snapshotLocked returns the forwarding table to persist, or nil when it has
// not changed. The write itself (with its fsync) happens in persist, outside
// the lock, so that gossip callbacks never wait on the disk.
func (p *Peer) snapshotLocked() []byte {
	if !p.dirty || p.cfg.StateDir == "" {
		return nil
	}
	b, err := json.Marshal(p.forwards.all())
	if err != nil {
		return nil
	}
	p.dirty = false
	return b
}

// persist writes a snapshot. It runs only on the housekeeping goroutine (and
// in Close after it stopped), so writes never race each other.
func (p *Peer) persist(b []byte) {
	if b == nil {
		return
	}
	if err := statedir.WriteFileAtomic(filepath.Join(p.cfg.StateDir, forwardsFile), b, 0o600); err != nil {
		p.log.Warn("cannot persist forwarding state; will retry", "err", err)
		p.mu.Lock()
		p.dirty = true
		p.mu.Unlock()
	}
}
