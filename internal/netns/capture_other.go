//go:build !linux

package netns

// StartCapture needs Linux's AF_PACKET sockets; elsewhere a Lab cannot be built anyway.
func (l *Lab) StartCapture() (*Capture, error) {
	return nil, ErrUnavailable
}
