package mesh

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// pushState is what a peer sends on memberlist's push/pull (at join, then
// every PushPullInterval): its whole forwarding table, and the names it still
// reserves for peers that failed.
//
// memberlist tells a joining peer about the members that are alive or
// suspect, but not about those it has declared dead, so without the
// reservations a peer that joins during a failed holder's grace period would
// see its name free while every older peer still keeps it for the holder.
type pushState struct {
	Forwards []Forward     `json:"f"`
	Reserved []reservation `json:"r,omitempty"`
}

// reservation is a name held by a failed peer for the rest of its grace.
type reservation struct {
	Name      string `json:"n"`
	ID        string `json:"id"`
	Host      string `json:"h,omitempty"`
	ClaimedAt int64  `json:"c"`
	// LeftMs is how much longer the name is held, in milliseconds: a
	// duration rather than a time, so that clocks need not agree.
	LeftMs int64 `json:"ms"`
}

// maxReservation bounds how long a received reservation can hold a name,
// whatever the sender says; each peer also caps it at its own NameGrace.
const maxReservation = 10 * time.Minute

func (r reservation) validate() error {
	if n, err := NormalizeName(r.Name); err != nil || n != r.Name {
		return fmt.Errorf("mesh: reservation has invalid name %q", clip(r.Name, 70))
	}
	if r.ID == "" || len(r.ID) > 64 || len(r.Host) > 255 {
		return fmt.Errorf("mesh: reservation of %q has a bad peer id or host", r.Name)
	}
	if r.LeftMs <= 0 || r.LeftMs > maxReservation.Milliseconds() {
		return fmt.Errorf("mesh: reservation of %q for %d ms", r.Name, r.LeftMs)
	}
	return nil
}

// decodePushState decodes another peer's push/pull state, dropping (and
// counting) invalid entries rather than failing the whole state. A bare
// array is the forwarding table alone, as peers before reservations sent it.
func decodePushState(b []byte) (st pushState, bad int, err error) {
	if len(b) > maxForwardState {
		return pushState{}, 0, fmt.Errorf("mesh: push/pull state of %d bytes exceeds %d", len(b), maxForwardState)
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		st.Forwards, bad, err = decodeForwards(b)
		return st, bad, err
	}
	var raw pushState
	if err := json.Unmarshal(b, &raw); err != nil {
		return pushState{}, 0, fmt.Errorf("mesh: decode push/pull state: %w", err)
	}
	for _, f := range raw.Forwards {
		if f.validate() != nil {
			bad++
			continue
		}
		st.Forwards = append(st.Forwards, f)
	}
	for _, r := range raw.Reserved {
		if r.validate() != nil {
			bad++
			continue
		}
		st.Reserved = append(st.Reserved, r)
	}
	return st, bad, nil
}

// reservationsLocked lists the names this peer keeps for failed peers.
func (p *Peer) reservationsLocked(now time.Time) []reservation {
	var rs []reservation
	for _, m := range p.members {
		if m.State != MemberDead || m.Meta.Name == "" || !m.holdsName(now, p.cfg.NameGrace) {
			continue
		}
		// A grace longer than others accept (maxReservation) is sent as the longest they do.
		left := min(p.cfg.NameGrace-now.Sub(m.Since), maxReservation)
		rs = append(rs, reservation{Name: m.Meta.Name, ID: m.ID, Host: m.Meta.Host, ClaimedAt: m.Meta.ClaimedAt, LeftMs: max(left.Milliseconds(), 1)})
	}
	return rs
}

// reserveLocked records a reservation learnt from another peer, for a peer
// this one has never known: it joins the members as failed, for the rest of
// its grace as the other peer counts it (at most our own NameGrace). A peer
// we know already keeps the state memberlist gave us.
func (p *Peer) reserveLocked(r reservation, now time.Time) {
	if r.ID == p.id || p.members[r.ID] != nil {
		return
	}
	left := min(time.Duration(r.LeftMs)*time.Millisecond, p.cfg.NameGrace)
	p.members[r.ID] = &Member{
		ID: r.ID, State: MemberDead, Since: now.Add(left - p.cfg.NameGrace),
		Meta: Meta{Name: r.Name, ClaimedAt: r.ClaimedAt, Host: r.Host},
	}
}
