//go:build !linux

package discovery

// netnsPin is a no-op where there are no network namespaces.
type netnsPin struct{}

func pinNetns() (*netnsPin, error) { return nil, nil }

func (p *netnsPin) close() {}

func (p *netnsPin) do(fn func() error) error { return fn() }
