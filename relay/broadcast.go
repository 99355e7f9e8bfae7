package relay

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/paf-mesh/paf-mesh/mesh"
)

// BroadcastResult says who got a broadcast.
type BroadcastResult struct {
	Delivered []string          `json:"delivered"`
	Failed    map[string]string `json:"failed,omitempty"` // name -> error
}

// Broadcast sends body to every named peer online now except this one, in
// parallel, and reports who got it.
func (r *Relay) Broadcast(ctx context.Context, from, body string) (BroadcastResult, error) {
	if strings.TrimSpace(body) == "" {
		return BroadcastResult{}, fmt.Errorf("%w: nothing was sent; write the message text", ErrEmpty)
	}
	var names []string
	for _, m := range r.dir.Members() {
		if m.Meta.Name != "" && m.Meta.Name != from && (m.State == mesh.MemberAlive || m.State == mesh.MemberSuspect) {
			names = append(names, m.Meta.Name)
		}
	}
	sort.Strings(names)
	res := BroadcastResult{Delivered: []string{}, Failed: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range names {
		m, err := r.prepare(Outgoing{From: from, To: name, Body: body})
		if err != nil {
			return res, err // the same for every recipient: size, text, our name
		}
		m.Broadcast = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.deliver(ctx, m, false)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed[name] = err.Error()
			} else {
				res.Delivered = append(res.Delivered, name)
			}
		}()
	}
	wg.Wait()
	sort.Strings(res.Delivered)
	return res, nil
}
